"""Write general_qa.jsonl and general_mcq.jsonl: the general-knowledge candidates a model (the
default one) answers correctly before injection, as a short answer and as a multiple choice.

    python -m kinject.data.builtin.select_general [--model NAME] [--out-qa FILE] [--out-mcq FILE]

The evaluation is kinject's own (``eval.kinds=[general_qa, general_mcq]`` on the candidates), in
the precision ``model_dtype: auto`` and ``eval.bf16: auto`` resolve to on this machine (printed).
Another model's sets go to ``--out-qa`` / ``--out-mcq``, for ``eval.general_qa_file`` /
``eval.general_mcq_file``. General retention is then the accuracy on these after injection (1.0
before it, in the same precision).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kinject.data.builtin.general import GENERAL_CANDIDATES_FILE, GENERAL_MCQ_FILE, GENERAL_QA_FILE, general_items
from kinject.data.jsonl import write_jsonl
from kinject.data.schema import Corpus
from kinject.evaluation.runner import EvalConfig, evaluate
from kinject.hardware import resolve_bf16
from kinject.models import DEFAULT_MODEL, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out-qa", default=str(GENERAL_QA_FILE))
    parser.add_argument("--out-mcq", default=str(GENERAL_MCQ_FILE))
    args = parser.parse_args()
    loaded = load_model(args.model)
    items = general_items(GENERAL_CANDIDATES_FILE)
    cfg = EvalConfig(kinds=["general_qa", "general_mcq"], general_qa_file=str(GENERAL_CANDIDATES_FILE),
                     general_mcq_file=str(GENERAL_CANDIDATES_FILE), progress=False)
    _, samples = evaluate(loaded.model, loaded.tokenizer, Corpus(name="general-candidates", documents=[], probes=[]),
                          cfg)
    right = {kind: [s["accuracy" if kind == "general_qa" else "acc"] == 1.0 for s in samples if s["kind"] == kind]
             for kind in ("general_qa", "general_mcq")}
    for kind, out in (("general_qa", args.out_qa), ("general_mcq", args.out_mcq)):
        keep = [{k: v for k, v in it.items() if kind == "general_mcq" or k != "choices"}
                for it, ok in zip(items, right[kind]) if ok]
        write_jsonl(Path(out), keep)
        print(f"{kind}: {len(keep)} of {len(items)} candidates kept in {out} ({args.model}, weights "
              f"{loaded.model.dtype}, eval bf16 {resolve_bf16(cfg.bf16)})")


if __name__ == "__main__":
    main()
