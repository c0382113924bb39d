"""``ft`` (continued pre-training on the documents) and ``ft-para`` (documents + paraphrases).

Both use the shared ``train`` config (full, LoRA, or a layer/module subset); ``ft-para`` adds
``para.k`` paraphrases per document and makes ``para.epochs`` passes over the larger set.
:func:`finetune`, which every training method calls, also adds the request's QA demonstrations
(``+qa``): mixed into the texts, or trained alone in a phase before or after them; and the
self-samples (``+delia``), mixed in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.generation.cache import generation_cache
from kinject.generation.paraphrase import check_paraphrase_source, corpus_paraphrases
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.training.perturb import Perturbation
from kinject.training.trainer import TrainText, train_causal_lm


def document_texts(corpus: Corpus) -> list[str]:
    return [d.text for d in corpus.documents]


def check_paraphrases(corpus: Corpus, cfg: RunConfig) -> None:
    check_paraphrase_source(corpus, cfg.para, cfg.generate)


def paraphrase_texts(req: InjectRequest) -> tuple[list[str], dict[str, Any]]:
    """The first ``para.k`` paraphrases of every document (``para.source``), and where they came from."""
    para = corpus_paraphrases(req.corpus, req.cfg.para, req.cfg.generate, generation_cache(req.cfg.generate.cache))
    texts = [p for d in req.corpus.documents for p in para.by_doc.get(d.id, [])[:req.cfg.para.k]]
    return texts, para.info


def _merged(model: Any) -> Any:
    """``model`` with a LoRA adapter folded in, so that a further phase trains a fresh one."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def finetune(req: InjectRequest, texts: list[TrainText], epochs: float | None = None, copies: int = 1,
             perturbation: Perturbation | None = None, **info) -> Injected:
    """Train the request's model on ``texts`` with the run's ``train`` config (``epochs`` overrides);
    ``copies``/``perturbation`` as in :func:`~kinject.training.trainer.train_causal_lm`.

    With ``req.demonstrations`` (``+qa``), by ``qa.mode`` (see
    :meth:`~kinject.data.demonstrations.Demonstrations.phases`): ``mixed`` adds them to ``texts``
    (same passes, same copies); ``before`` first trains on them alone (plain, ``qa.epochs``
    passes); ``after`` adds their source documents to ``texts`` and then trains on the QA pairs
    alone (plain, ``qa.epochs`` passes). A LoRA adapter is merged between phases. Costs add up
    over the phases. ``req.self_samples`` (``+delia``) are added to ``texts`` (same passes, same
    copies).
    """
    cfg = req.cfg.train if epochs is None else dataclasses.replace(req.cfg.train, epochs=epochs)
    if perturbation is not None:
        perturbation = dataclasses.replace(perturbation, clean_copy=req.cfg.noise.clean_copy)
        info["clean_copy"] = perturbation.clean_copy
    demos = req.demonstrations
    before, mixed, after = ([], [], []) if demos is None else demos.phases()
    demo_cfg = None if demos is None else dataclasses.replace(req.cfg.train, epochs=demos.epochs)
    model, results = req.loaded.model, []
    if before:
        model, first = train_causal_lm(model, req.loaded.tokenizer, before, demo_cfg, req.seed)
        model = _merged(model)
        results.append(first)
    mix: list[TrainText] = [*texts, *mixed]
    if req.self_samples is not None:
        mix += req.self_samples.texts
        info["self_samples"] = req.self_samples.info
    model, res = train_causal_lm(model, req.loaded.tokenizer, mix, cfg, req.seed, copies, perturbation)
    results.append(res)
    if after:
        model, last = train_causal_lm(_merged(model), req.loaded.tokenizer, after, demo_cfg, req.seed)
        results.append(last)
    if demos is not None:
        info["demonstrations"] = demos.info
    losses = [x for r in results for x in r.losses]
    return Injected(model, req.loaded.tokenizer, train_tokens=sum(r.tokens for r in results),
                    train_seconds=sum(r.seconds for r in results), train_steps=sum(r.steps for r in results),
                    trainable_params=res.trainable_params,
                    info={"texts": len(texts), "copies": copies, "losses": losses, **info})


@register_method("ft", "fine-tuning (continued pre-training) on the documents")
def ft(req: InjectRequest) -> Injected:
    return finetune(req, document_texts(req.corpus))


@register_method("ft-para", "fine-tuning on the documents plus para.k paraphrases of each", check=check_paraphrases)
def ft_para(req: InjectRequest) -> Injected:
    extra, where = paraphrase_texts(req)
    return finetune(req, document_texts(req.corpus) + extra, epochs=req.cfg.para.epochs, paraphrases=len(extra),
                    paraphrase_source=where)
