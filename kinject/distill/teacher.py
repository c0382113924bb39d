"""The teacher's targets: the frozen model, reading the document, answers each prompt.

For each prompt the teacher text is ``context + "\\n" + prompt`` (the context as ``rag`` places
passages: "Context: ..."; a question behind the corpus's few-shot header, as the evaluation asks)
and the student text is the prompt alone; or, with ``distill.format=chat``, both are the model's
chat template around a user turn (the context, a ``---`` line and the question for the teacher,
the question alone for the student). The teacher's answer is generated (greedy or sampled,
at most ``distill.max_new_tokens``, kept up to and including EOS and, in the ``qa`` format, the
first newline); then one
forward pass over teacher text + answer gives, at every answer token, the teacher's ``top_k``
most likely next tokens and their log-probabilities. Student prompt ids + the same answer ids,
with those distributions, make one :class:`~kinject.training.trainer.Distilled` row.

Targets are computed before any training, on the model as loaded, and cached per prompt under
``$KINJECT_CACHE/distill/`` (JSON, keyed by the model's fingerprint, both texts and the answer
settings), so a second run, another run seed, or another method asks nothing again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

from kinject.distill.config import DistillConfig
from kinject.evaluation.lm import newline_ids
from kinject.generation.cache import GenerationCost, first_use, read_cached, write_cached
from kinject.generation.generators import content_seed
from kinject.hardware import on_main_process
from kinject.training.trainer import Distilled, pad_left, pad_right


@dataclass(frozen=True)
class TeacherPrompt:
    """What the teacher reads (``teacher``) and what the student will see (``student``); with
    ``answer`` the teacher does not answer but scores that text after its prompt (``+anchor`` on a
    given general text). ``templated``: both texts come from the chat template, which writes the
    model's special tokens itself (the tokenizer adds none)."""

    teacher: str
    student: str
    answer: str | None = None
    templated: bool = False


@dataclass
class TeacherTargets:
    """One :class:`Distilled` row per prompt (an empty answer gives none), ``asked[i]`` the index
    of row i's prompt, and the teacher's cost: prompts asked (``requests``), of them from the
    cache, tokens read (``prompt_tokens``) and written (``completion_tokens``), and the seconds
    they took when computed, cached or not."""

    rows: list[Distilled] = field(default_factory=list)
    asked: list[int] = field(default_factory=list)
    cost: GenerationCost = field(default_factory=GenerationCost)


def _key(model_key: str, prompt: TeacherPrompt, cfg: DistillConfig, stop_at_newline: bool) -> str:
    sample = cfg.answer == "sample"
    settings = [cfg.answer, cfg.answer_temperature if sample else None, cfg.max_new_tokens, cfg.top_k,
                cfg.seed if sample else None] + (["row_seeded"] if sample else [])
    if sample and cfg.answer_top_k:
        settings.append(f"answer_top_k={cfg.answer_top_k}")
    if prompt.answer is not None:
        settings = [cfg.max_new_tokens, cfg.top_k, "given", prompt.answer]
    elif not stop_at_newline:
        settings.append("to_eos")
    payload = json.dumps([model_key, prompt.teacher, prompt.student, settings], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _cut(ids: list[int], stops: frozenset[int]) -> list[int]:
    """``ids`` up to and including the first stop token."""
    for i, t in enumerate(ids):
        if t in stops:
            return ids[: i + 1]
    return ids


class RowSampler(LogitsProcessor):
    """Samples each row's next token at ``temperature`` (from its ``top_k`` most likely tokens when
    ``top_k`` > 0) from its own generator (seeded by ``seeds[i]``) and leaves only that token, so
    that greedy decoding takes it: a row's sample depends on its own seed, not on the other rows of
    its batch or on the global RNG."""

    def __init__(self, seeds: Sequence[int], temperature: float, device: torch.device, top_k: int = 0) -> None:
        self.temperature = temperature
        self.top_k = top_k
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``scores``: (rows, vocab) next-token logits; returns the same shape, 0 at the drawn
        token and -inf elsewhere."""
        scores = scores.float()
        if 0 < self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores / self.temperature, dim=-1)
        drawn = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        return torch.full_like(scores, float("-inf")).scatter_(1, drawn, 0.0)


def _answers(model, tokenizer, prompts: list[list[int]], cfg: DistillConfig, seeds: Sequence[int],
             stop_at_newline: bool = True) -> list[list[int]]:
    """The teacher's answer ids after each prompt (left-padded batch), cut after EOS and, with
    ``stop_at_newline``, after the first newline; sampled answers (``distill.answer=sample``) draw
    from one generator per prompt, seeded by ``seeds``."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    ids, mask = pad_left(prompts, pad)
    ids, mask, width = ids.to(device), mask.to(device), ids.shape[1]
    sampler = [RowSampler(seeds, cfg.answer_temperature, device, cfg.answer_top_k)] if cfg.answer == "sample" else []
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                         temperature=None, top_p=None, top_k=None, logits_processor=LogitsProcessorList(sampler),
                         pad_token_id=pad)
    stops = {tokenizer.eos_token_id} - {None}
    if stop_at_newline:
        stops |= newline_ids(tokenizer)
    return [_cut(row[width:].tolist(), frozenset(stops)) for row in out]


def _top_k(model, prompts: list[list[int]], answers: list[list[int]], k: int, pad_id: int
           ) -> list[tuple[list[list[int]], list[list[float]]]]:
    """At each answer token: the teacher's k most likely next tokens and their log-probabilities."""
    device = next(model.parameters()).device
    ids, mask = pad_right([p + a for p, a in zip(prompts, answers)], pad_id)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    out = []
    for i, (p, a) in enumerate(zip(prompts, answers)):
        logp = torch.log_softmax(logits[i, len(p) - 1: len(p) - 1 + len(a)].float(), dim=-1)
        top = logp.topk(k, dim=-1)
        out.append((top.indices.tolist(), [[round(x, 4) for x in row] for row in top.values.tolist()]))
    return out


def _targets(model, tokenizer, prompts: Sequence[TeacherPrompt], keys: list[str], cfg: DistillConfig,
             cache: Path | None, progress: bool, stop_at_newline: bool) -> tuple[dict[str, dict[str, Any]], int]:
    """Each key's entry (answer ids, top ids and log-probabilities, prompt tokens, seconds): read
    from ``cache``, or computed and stored; and how many were computed."""
    found = read_cached(cache, keys)
    missing = list(dict.fromkeys(k for k in keys if k not in found))
    index = {k: i for i, k in enumerate(keys)}
    was_training = model.training
    model.eval()
    steps = range(0, len(missing), cfg.batch_size)
    with torch.inference_mode():
        for lo in tqdm(steps, desc="teacher", disable=not progress or len(steps) < 2, leave=False):
            batch = missing[lo: lo + cfg.batch_size]
            start = time.perf_counter()
            asked = [prompts[index[k]] for k in batch]
            t_ids = [tokenizer(p.teacher, add_special_tokens=not p.templated).input_ids for p in asked]
            answers = [[] if p.answer is None else
                       tokenizer(p.answer, add_special_tokens=False).input_ids[: cfg.max_new_tokens] for p in asked]
            ask = [i for i, p in enumerate(asked) if p.answer is None]
            if ask:
                for i, a in zip(ask, _answers(model, tokenizer, [t_ids[i] for i in ask], cfg,
                                              [content_seed(cfg.seed, batch[i]) for i in ask], stop_at_newline)):
                    answers[i] = a
            scored = _top_k(model, t_ids, answers, cfg.top_k, tokenizer.pad_token_id)
            share = (time.perf_counter() - start) / len(batch)
            for k, p, a, (top, logp) in zip(batch, t_ids, answers, scored):
                found[k] = {"answer_ids": a, "top_ids": top, "top_logprobs": logp, "prompt_tokens": len(p),
                            "seconds": share}
                if cache is not None:
                    write_cached(cache, k, found[k])
    model.train(was_training)
    return found, len(missing)


def teacher_targets(model, tokenizer, prompts: Sequence[TeacherPrompt], cfg: DistillConfig, model_key: str,
                    cache: Path | None, progress: bool = True, stop_at_newline: bool = True,
                    weight: float = 1.0) -> TeacherTargets:
    """The teacher's answers and top-k distributions for ``prompts`` (cached per prompt), as
    :class:`Distilled` rows in prompt order, each of loss weight ``weight``. A prompt's given
    ``answer`` is scored as it is (its first ``cfg.max_new_tokens`` tokens); the others are
    answered, cut after EOS and (``stop_at_newline``) the first newline. Under a distributed launch
    rank 0 reads the cache and asks the teacher, and every rank gets its targets."""
    result = TeacherTargets()
    keys = [_key(model_key, p, cfg, stop_at_newline) for p in prompts]
    found, missing = on_main_process(lambda: _targets(model, tokenizer, prompts, keys, cfg, cache, progress,
                                                      stop_at_newline))
    cost = result.cost
    cost.requests, cost.cached = len(prompts), len(prompts) - missing
    for k in filter(first_use, dict.fromkeys(keys)):
        cost.prompt_tokens += found[k]["prompt_tokens"]
        cost.completion_tokens += len(found[k]["answer_ids"])
        cost.seconds += found[k]["seconds"]
    for i, (p, k) in enumerate(zip(prompts, keys)):
        t = found[k]
        if t["answer_ids"]:
            result.asked.append(i)
            student = tokenizer(p.student, add_special_tokens=not p.templated).input_ids
            result.rows.append(Distilled(tuple(student), tuple(t["answer_ids"]),
                                         tuple(tuple(r) for r in t["top_ids"]),
                                         tuple(tuple(r) for r in t["top_logprobs"]), cfg.loss,
                                         cfg.kl_temperature, weight, cfg.average))
    return result
