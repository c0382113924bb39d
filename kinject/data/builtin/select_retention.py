"""Write retention.jsonl: the candidates a model (the default one) answers correctly before injection.

    python -m kinject.data.builtin.select_retention [--model NAME] [--out FILE]

Another model's set goes to ``--out`` (``retention-gemma3-270m.jsonl`` beside the default's), for
``eval.retention_file``.
Retention is then measured as accuracy on these probes after injection (1.0 before it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kinject.data.builtin.retention import CANDIDATES_FILE, RETENTION_FILE, retention_probes
from kinject.data.jsonl import write_jsonl
from kinject.data.schema import Corpus
from kinject.evaluation.runner import EvalConfig, evaluate
from kinject.models import DEFAULT_MODEL, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default=str(RETENTION_FILE), help="JSONL to write (default: the shipped set)")
    args = parser.parse_args()
    loaded = load_model(args.model)
    candidates = retention_probes(CANDIDATES_FILE)
    corpus = Corpus(name="retention-candidates", documents=[], probes=[])
    cfg = EvalConfig(kinds=["retention"], retention_file=str(CANDIDATES_FILE))
    _, samples = evaluate(loaded.model, loaded.tokenizer, corpus, cfg)
    kept = []
    for probe, sample in zip(candidates, samples):
        if sample["accuracy"] == 1.0:
            kept.append({"question": probe.question, "answer": probe.answers[0]})
    write_jsonl(Path(args.out), kept)
    print(f"{len(kept)} of {len(candidates)} candidates kept in {args.out} ({args.model}, {loaded.model.dtype})")


if __name__ == "__main__":
    main()
