"""Which tokens a latent paraphraser's learned mask perturbs: answer, entity (subject) and other.

    .venv/bin/python benchmarks/paraphraser_mask.py [--world 1001] [--paraphraser auto DIR ...] [key=value ...]

For each paraphraser (``auto``: the one shipped for the default model), on the corpus the config
names (by default the built-in world ``--world``: choose one the paraphrasers were not trained on;
``key=value`` overrides as on the CLI, e.g. ``data.source=lapael-squad
data.path=../shared/data/lapael-squad data.split=test data.limit=200``): the expected share of
tokens the learned mask perturbs, per kind and per perturbed layer, with the config's model and the
paraphraser attached as at injection (:func:`kinject.lapael.mask_rates.perturb_rates`), on

- the corpus's injected documents (what ``lapael`` trains on: every fact's answer and subject marked);
- its train split's sentences, whole (what ``train-paraphraser`` trains on; SQuAD's train split
  when the corpus is SQuAD's test split).

A mask that does what LaPael intends perturbs answer and entity tokens clearly less often than
other tokens. Prints one row per paraphraser, text set and kind.
"""

from __future__ import annotations

import argparse
import sys

from kinject.config import load_config
from kinject.data.loaders import load_corpus
from kinject.hardware import place
from kinject.lapael.mask_rates import perturb_rates
from kinject.lapael.paraphraser import load_paraphraser, resolve_paraphraser
from kinject.lapael.targets import TOKEN_KINDS, fact_entities, token_kinds, tokenize_sentence
from kinject.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="key=value words anywhere are config overrides, as on the CLI "
                                        "(taken out before the options are parsed, so --paraphraser "
                                        "cannot swallow them)")
    ap.add_argument("--world", type=int, default=1001, help="seed of the built-in world measured on")
    ap.add_argument("--paraphraser", nargs="+", default=["auto"])
    argv = sys.argv[1:]
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = ap.parse_args([a for a in argv if a not in overrides])
    cfg = load_config(None, overrides)
    corpus = load_corpus(cfg.data, args.world)
    loaded = load_model(cfg.model, cfg.model_dtype)
    tok = loaded.tokenizer
    by_doc: dict[str, list] = {}
    for fact in corpus.facts:
        by_doc.setdefault(fact.doc_id, []).append(fact)
    documents = [token_kinds(tok, d.text, [f.answer for f in by_doc.get(d.id, [])],
                             [e for f in by_doc.get(d.id, []) for e in fact_entities(f)])[:2]
                 for d in corpus.documents]
    sentences = [(t.ids, t.kinds) for f in corpus.train_facts
                 if (t := tokenize_sentence(tok, f.text, f.answer, fact_entities(f))) is not None]
    where = f"{corpus.name} (seed {args.world})" if cfg.data.source == "builtin" else corpus.name
    print(f"{where}: {len(documents)} documents, {len(sentences)} train sentences; "
          f"model {cfg.model} ({loaded.model.dtype}); share of tokens perturbed (mean of sigmoid(mask logit))")
    print(f"{'paraphraser':40s} {'texts':10s} {'kind':7s} {'tokens':>7s} {'mean':>6s}  by layer")
    for spec in args.paraphraser:
        path = resolve_paraphraser(spec, cfg.model)
        para = load_paraphraser(path)
        para.check_fits_model(loaded.model, str(path))
        place(para)
        for name, rows in (("documents", documents), ("sentences", sentences)):
            rates = perturb_rates(loaded.model, tok.pad_token_id, para, rows)
            for kind in TOKEN_KINDS:
                layers = " ".join(_rate(rates["by_layer"][i][kind]) for i in para.layers)
                print(f"{str(path)[-40:]:40s} {name:10s} {kind:7s} {rates['tokens'][kind]:7d} "
                      f"{_rate(rates['mean'][kind]):>6s}  {layers}")


def _rate(value: float | None) -> str:
    """A share as two decimals, or '-' for a kind with no tokens in the texts."""
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
