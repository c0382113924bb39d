"""``lapael`` and ``lapael+para``: fine-tuning with a frozen latent paraphraser (LaPael).

Each training sample becomes ``noise.copies`` rows of its batch: copy 0 clean, the others
perturbed by the paraphraser (``lapael.paraphraser``; ``auto`` = the one shipped for the default
model) with its learned token mask; the LM loss averages over all rows. ``lapael+para`` does the
same on the documents plus ``para.k`` paraphrases of each (as ``ft-para``). The paraphraser is
removed after training: the injected model is the plain model. The trained part follows ``train``
(``configs/lapael-recipe.yaml`` has LaPael's own: the MLPs of layers 5..end). The cell's
``info.paraphraser_train_seconds`` is what training the paraphraser took (from its
paraphraser.json): paid once for every injection that reuses it, so not in the cell's cost.
"""

from __future__ import annotations

from pathlib import Path

from kinject.config import RunConfig
from kinject.data.jsonl import read_json
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.hardware import place
from kinject.lapael.paraphraser import load_paraphraser, resolve_paraphraser
from kinject.methods.finetune import check_paraphrases, document_texts, finetune, paraphrase_texts
from kinject.methods.noise import check_noise
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.models import resolve_model_path
from kinject.training.trainer import Marked, TrainText


def check_lapael(corpus: Corpus, cfg: RunConfig) -> None:
    """The noise settings, and a paraphraser that loads and fits the model (read from its config)."""
    from transformers import AutoConfig

    check_noise(corpus, cfg)
    if cfg.lapael.mask == "oracle" and not corpus.facts:
        raise UserError(f"lapael.mask=oracle: corpus {corpus.name!r} has no facts whose answer and subject spans "
                        "it could keep (the built-in world and LaPael SQuAD have them)")
    path = resolve_paraphraser(cfg.lapael.paraphraser, cfg.model)
    para = load_paraphraser(path)
    model_cfg = AutoConfig.from_pretrained(resolve_model_path(cfg.model))
    para.check_fits(getattr(model_cfg, "hidden_size", None), model_cfg.num_hidden_layers, f"lapael.paraphraser {path}")


def check_lapael_para(corpus: Corpus, cfg: RunConfig) -> None:
    check_lapael(corpus, cfg)
    check_paraphrases(corpus, cfg)


def _with_paraphraser(req: InjectRequest, texts: list[str], epochs: float | None = None, **info) -> Injected:
    path = resolve_paraphraser(req.cfg.lapael.paraphraser, req.cfg.model)
    para = load_paraphraser(path)
    para.check_fits_model(req.loaded.model, f"lapael.paraphraser {path}")
    place(para)
    trained: list[TrainText] = list(texts)
    if req.cfg.lapael.mask == "oracle":  # the known spans kept, other tokens perturbed at mask_ratio
        para.oracle_ratio = req.cfg.lapael.mask_ratio
        phrases = [p for f in req.corpus.facts for p in (f.answer, f.subject, *f.entities)]
        trained = [Marked.of(t, phrases) for t in texts]
    once = read_json(Path(path) / "paraphraser.json").get("training", {}).get("train_seconds")
    return finetune(req, trained, epochs=epochs, copies=req.cfg.noise.copies, perturbation=para.perturbation(),
                    paraphraser=str(path), paraphraser_layers=para.layers, mask=req.cfg.lapael.mask,
                    paraphraser_train_seconds=once, **info)


@register_method("lapael", "fine-tuning on the documents, noise.copies copies per sample, all but the first "
                 "perturbed by the latent paraphraser (lapael.paraphraser)", check=check_lapael)
def lapael(req: InjectRequest) -> Injected:
    return _with_paraphraser(req, document_texts(req.corpus))


@register_method("lapael+para", "as lapael, on the documents plus para.k paraphrases of each (as ft-para)",
                 check=check_lapael_para)
def lapael_para(req: InjectRequest) -> Injected:
    extra, where = paraphrase_texts(req)
    return _with_paraphraser(req, document_texts(req.corpus) + extra, epochs=req.cfg.para.epochs,
                             paraphrases=len(extra), paraphrase_source=where)
