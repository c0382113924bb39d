"""``ft`` (continued pre-training on the documents) and ``ft-para`` (documents + paraphrases).

Both use the shared ``train`` config (full, LoRA, or a layer/module subset); ``ft-para`` adds
``para.k`` paraphrases per document and makes ``para.epochs`` passes over the larger set.
:func:`finetune`, which every training method calls, also adds the request's QA demonstrations
(``+qa``): mixed into the texts, or trained alone in a phase before or after them; and the
self-samples (``+delia``) and general text (``+replay``, ``+anchor``), mixed in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kinject.artifacts import directory_fingerprint
from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.generation.cache import GenerationCost, generation_cache, pay_once
from kinject.generation.paraphrase import check_paraphrase_source, corpus_paraphrases
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.models import cache_dir
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


def merged(model: Any) -> Any:
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
    copies), and so are ``req.replay``'s texts (``+replay``, ``+anchor``): ``replay.ratio`` of
    them per text of that mix, built by the model as loaded, before any phase trains it; with
    ``replay.phases=all`` the before/after phase of demonstrations gets its share too.
    """
    cfg = req.cfg.train if epochs is None else dataclasses.replace(req.cfg.train, epochs=epochs)
    if perturbation is not None:
        perturbation = dataclasses.replace(perturbation, clean_copy=req.cfg.noise.clean_copy)
        info["clean_copy"] = perturbation.clean_copy
    demos = req.demonstrations
    before, mixed, after = ([], [], []) if demos is None else demos.phases()
    demo_cfg = None if demos is None else dataclasses.replace(req.cfg.train, epochs=demos.epochs)
    mix: list[TrainText] = [*texts, *mixed]
    if req.self_samples is not None:
        mix += req.self_samples.texts
        info["self_samples"] = req.self_samples.info
    with pay_once():  # the phases draw the same replay texts: each is paid once
        mix, teacher = add_replay_texts(req, mix, info)
        if req.cfg.replay.phases == "all":
            before, more = add_replay_texts(req, before, info, "before")
            after, most = add_replay_texts(req, after, info, "after")
            teacher.add(more)
            teacher.add(most)
    model, results = req.loaded.model, []
    if before:
        model, first = train_causal_lm(model, req.loaded.tokenizer, before, demo_cfg, req.seed)
        model = merged(model)
        results.append(first)
    model, res = train_causal_lm(model, req.loaded.tokenizer, mix, cfg, req.seed, copies, perturbation)
    results.append(res)
    if after:
        model, last = train_causal_lm(merged(model), req.loaded.tokenizer, after, demo_cfg, req.seed)
        results.append(last)
    if demos is not None:
        info["demonstrations"] = demos.info
    losses = [x for r in results for x in r.losses]
    generated = generation_cost(info)
    return Injected(model, req.loaded.tokenizer, train_tokens=sum(r.tokens for r in results),
                    train_seconds=sum(r.seconds for r in results), train_steps=sum(r.steps for r in results),
                    trainable_params=res.trainable_params, teacher_tokens=teacher.prompt_tokens
                    + teacher.completion_tokens, teacher_seconds=teacher.seconds,
                    generation_tokens=generated.prompt_tokens + generated.completion_tokens,
                    generation_seconds=generated.seconds,
                    info={"texts": len(texts), "copies": copies, "losses": losses, **info})


def generation_cost(info: dict[str, Any]) -> GenerationCost:
    """What generating the training data recorded in ``info`` cost: generated paraphrases
    (``paraphrase_source.cost``), self-samples (``self_samples.cost``) and the prompts distill's
    ``generate:`` LLM wrote (``distill.generation.cost``); gold, file or templated data cost
    nothing here."""
    total = GenerationCost()
    for part in (info.get("paraphrase_source"), info.get("self_samples"), info.get("distill", {}).get("generation")):
        if part and part.get("cost") is not None:
            total.add(GenerationCost(**part["cost"]))
    return total


def add_replay_texts(req: InjectRequest, mix: list[TrainText], info: dict[str, Any], phase: str = "main"
                     ) -> tuple[list[TrainText], GenerationCost]:
    """``mix`` (the texts of one training phase; none: nothing added) with each of ``req.replay``'s
    general texts added (``round(replay.ratio x len(mix))``, at least one), their info appended
    to ``info["replay"]`` (with ``phase`` when it is not the main one), and what the frozen
    model read and wrote for them."""
    cost = GenerationCost()
    if not req.replay or not mix:
        return mix, cost
    cache = cache_dir() / "distill" if req.cfg.replay.cache else None
    key = directory_fingerprint(req.source.path)
    added: list[TrainText] = []
    for plan in req.replay:
        wanted = max(1, round(plan.cfg.ratio * len(mix)))
        texts, about = plan.texts(req.source, key, wanted, cache, req.cfg.train.progress)
        added += texts
        info.setdefault("replay", []).append(about if phase == "main" else {**about, "phase": phase})
        cost.add(GenerationCost(**about["cost"]))
    return [*mix, *added], cost


@register_method("ft", "fine-tuning (continued pre-training) on the documents")
def ft(req: InjectRequest) -> Injected:
    return finetune(req, document_texts(req.corpus))


@register_method("ft-para", "fine-tuning on the documents plus para.k paraphrases of each", check=check_paraphrases)
def ft_para(req: InjectRequest) -> Injected:
    extra, where = paraphrase_texts(req)
    return finetune(req, document_texts(req.corpus) + extra, epochs=req.cfg.para.epochs, paraphrases=len(extra),
                    paraphrase_source=where)
