"""The one evaluation every method gets: the same probes, prompts, decoding and metrics.

- ``qa`` and ``retention``: closed-book, few-shot header ("Answer the questions." and Q/A
  pairs), greedy decoding, cut at the first newline; EM/F1/recall/accuracy (metrics.py).
- ``cloze``: the bare sentence prefix, greedy, cut at the first sentence end; same metrics.
- ``mcq``: the QA header and question, each choice scored by summed log-likelihood (``acc``)
  and by log-likelihood per byte of the choice (``acc_norm``), as lm-evaluation-harness does.
- The broader retention measure (:mod:`kinject.data.builtin.general`): ``general_qa`` (short
  answers, as ``retention``) and ``general_mcq`` (multiple choice, as ``mcq``, behind
  ``retention``'s header) on general-knowledge items the base model gets right, and
  ``general_kl`` (:mod:`kinject.evaluation.drift`): the KL from the base model's next-token
  distributions on general text, and the ratio of the text's NLL to the base model's.

A method may supply a ``context`` function (retrieval) that returns, for a batch of probes, the
text placed before each one (before the question for qa/mcq/retention, before the prefix for
cloze) and extra fields for its sample record. Where those carry ``gold_rank`` (the 1-based rank of
the passage holding the gold fact, or None), the kind's metrics add ``retrieval_recall`` (recall@k)
and ``retrieval_mrr``; where they carry ``answer_retrieved`` (some passage states a gold answer),
``retrieval_answer_recall``. The evaluation is otherwise unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, each_one_of, non_empty, one_of
from kinject.data.builtin.general import GENERAL_MCQ_FILE, GENERAL_QA_FILE, general_mcq_probes, general_qa_probes
from kinject.data.builtin.retention import RETENTION_FEWSHOT, RETENTION_FILE, retention_probes
from kinject.data.schema import PROBE_KINDS, QA_INSTRUCTION, Corpus, Probe
from kinject.evaluation.drift import BaseReference, drift
from kinject.evaluation.lm import PrefixLM
from kinject.evaluation.metrics import NORMALISATION, mean, score_answer
from kinject.hardware import resolve_bf16


@dataclass
class Context:
    """Text a method places before one probe, and fields added to that probe's sample record."""

    text: str
    record: dict[str, Any] = field(default_factory=dict)


ContextFn = Callable[[Sequence[Probe]], list[Context]]
GENERAL_KINDS: tuple[str, ...] = ("general_qa", "general_mcq", "general_kl")
CORPUS_KINDS: tuple[str, ...] = ("qa", "mcq", "cloze")  # probes of the corpus (the others measure general knowledge)
EVAL_KINDS: tuple[str, ...] = (*PROBE_KINDS, *GENERAL_KINDS)
_SENTENCE_END = re.compile(r"(?<=[^\s.]{2})\.(\s|$)")


@dataclass
class EvalConfig:
    """What to evaluate and how. ``limit``: at most this many probes per kind (None = all).

    ``retention_file``: a JSONL of {question, answer} general-knowledge probes (None = the
    shipped set the default model answers correctly). ``general_qa_file`` / ``general_mcq_file``:
    the same for ``general_qa`` and ``general_mcq`` ({question, answer[, choices]}; None = the
    shipped sets, selected for the default model).
    """

    kinds: list[str] = field(default_factory=lambda: ["qa", "mcq", "cloze", "retention"])
    batch_size: int = 16
    max_new_tokens: int = 32
    cloze_max_new_tokens: int = 12
    bf16: str | bool = "auto"
    limit: int | None = None
    retention_file: str | None = None
    general_qa_file: str | None = None
    general_mcq_file: str | None = None
    progress: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "kinds": lambda v: non_empty(v) or each_one_of(*EVAL_KINDS)(v), "batch_size": at_least(1),
        "max_new_tokens": at_least(1), "cloze_max_new_tokens": at_least(1), "bf16": one_of("auto", True, False),
        "limit": at_least(1)}


def qa_header(instruction: str, fewshot: Sequence[tuple[str, str]]) -> str:
    """The few-shot header: instruction, blank line, then "Question: q\\nAnswer: a" blocks."""
    return instruction + "\n\n" + "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in fewshot)


def qa_prompt(question: str) -> str:
    """A question as every QA probe is asked after the header: "Question: q\\nAnswer:"."""
    return f"Question: {question}\nAnswer:"


def qa_suffix(probe: Probe) -> str:
    return qa_prompt(probe.question)


def _answer_records(probes: list[Probe], prompts: list[str], preds: list[str], header: str) -> list[dict[str, Any]]:
    return [
        {"probe_id": p.id, "kind": p.kind, "prompt": header + prompt, "prediction": pred,
         "answers": p.answers, **score_answer(pred, p.answers)}
        for p, prompt, pred in zip(probes, prompts, preds)
    ]


def summarise(kind: str, records: list[dict[str, Any]]) -> dict[str, float]:
    """A kind's metrics (accuracy, EM, F1... and retrieval recall where recorded) over its records."""
    keys = ("acc", "acc_norm") if kind in ("mcq", "general_mcq") else ("accuracy", "em", "f1", "recall")
    out = {k: mean([r[k] for r in records]) for k in keys} | {"n": len(records)}
    ranks = [r["gold_rank"] for r in records if "gold_rank" in r]
    if ranks:
        out["retrieval_recall"] = mean([float(r is not None) for r in ranks])
        out["retrieval_mrr"] = mean([1.0 / r if r else 0.0 for r in ranks])
    stated = [r["answer_retrieved"] for r in records if "answer_retrieved" in r]
    if stated:
        out["retrieval_answer_recall"] = mean([float(x) for x in stated])
    return out


def _with_context(probes: list[Probe], prompts: list[str], context: ContextFn | None
                  ) -> tuple[list[str], list[dict[str, Any]]]:
    """Prompts with each probe's context before them (a newline between), and the record extras."""
    if context is None:
        return prompts, [{} for _ in probes]
    contexts = context(probes)
    return ([c.text + "\n" + p if c.text else p for c, p in zip(contexts, prompts)],
            [c.record for c in contexts])


def _mcq_records(lm: PrefixLM, probes: list[Probe], prompts: list[str], header: str) -> list[dict[str, Any]]:
    scored = lm.score_choices(prompts, [[" " + c for c in p.choices] for p in probes], desc="mcq")
    records = []
    for prompt, p, scores in zip(prompts, probes, scored):
        ll = [s for s, _ in scores]
        norm = [s / max(1, len(c.encode())) for s, c in zip(ll, p.choices)]
        records.append({
            "probe_id": p.id, "kind": p.kind, "prompt": header + prompt, "choices": p.choices,
            "label": p.label, "loglikelihoods": ll,
            "acc": float(max(range(len(ll)), key=ll.__getitem__) == p.label),
            "acc_norm": float(max(range(len(norm)), key=norm.__getitem__) == p.label),
        })
    return records


def _probes(corpus: Corpus, kind: str, cfg: EvalConfig) -> list[Probe]:
    if kind == "retention":
        probes = retention_probes(Path(cfg.retention_file) if cfg.retention_file else RETENTION_FILE)
    elif kind == "general_qa":
        probes = general_qa_probes(Path(cfg.general_qa_file) if cfg.general_qa_file else GENERAL_QA_FILE)
    elif kind == "general_mcq":
        probes = general_mcq_probes(Path(cfg.general_mcq_file) if cfg.general_mcq_file else GENERAL_MCQ_FILE)
    else:
        probes = corpus.probes_of(kind)
    return probes if cfg.limit is None else probes[: cfg.limit]


def evaluate(model, tokenizer, corpus: Corpus, cfg: EvalConfig, context: ContextFn | None = None,
             reference: BaseReference | None = None) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Evaluate ``model`` on ``corpus``'s probes of the kinds in ``cfg.kinds``.

    Returns (metrics per probe kind, one record per probe). With ``context``, every prompt
    carries the method's text (retrieved passages) before the question or cloze prefix. Kinds
    without probes are skipped. ``general_kl`` needs the base model's ``reference`` (no context
    is placed before its text: it measures the weights).
    """
    check_section(cfg, "eval")
    kw = {"batch_size": cfg.batch_size, "bf16": resolve_bf16(cfg.bf16), "progress": cfg.progress}
    header = qa_header(corpus.instruction, corpus.fewshot)
    metrics: dict[str, dict[str, float]] = {}
    samples: list[dict[str, Any]] = []
    qa_lm = None
    r_header = qa_header(QA_INSTRUCTION, RETENTION_FEWSHOT)
    for kind in cfg.kinds:
        if kind == "general_kl":
            if reference is None:
                raise ValueError("eval kind general_kl needs the base model's reference")
            metrics[kind] = drift(model, tokenizer, reference.texts, reference.get(), kw["batch_size"], kw["bf16"])
            continue
        probes = _probes(corpus, kind, cfg)
        if not probes:
            continue
        if kind in ("qa", "mcq"):
            qa_lm = qa_lm or PrefixLM(model, tokenizer, header, **kw)
            prompts, extras = _with_context(probes, [qa_suffix(p) for p in probes], context)
            if kind == "qa":
                records = _answer_records(probes, prompts, qa_lm.generate(prompts, cfg.max_new_tokens, desc="qa"),
                                          header)
            else:
                records = _mcq_records(qa_lm, probes, prompts, header)
        elif kind == "cloze":
            prompts, extras = _with_context(probes, [p.question for p in probes], context)
            raw = PrefixLM(model, tokenizer, "", **kw).generate(prompts, cfg.cloze_max_new_tokens, desc="cloze")
            records = _answer_records(probes, prompts, [_SENTENCE_END.split(x, 1)[0] for x in raw], "")
        elif kind == "general_mcq":  # retention's general-knowledge header, scored as mcq
            prompts, extras = _with_context(probes, [qa_suffix(p) for p in probes], context)
            records = _mcq_records(PrefixLM(model, tokenizer, r_header, **kw), probes, prompts, r_header)
        else:  # retention, general_qa: their own general-knowledge few-shot header
            prompts, extras = _with_context(probes, [qa_suffix(p) for p in probes], context)
            preds = PrefixLM(model, tokenizer, r_header, **kw).generate(prompts, cfg.max_new_tokens, desc=kind)
            records = _answer_records(probes, prompts, preds, r_header)
        records = [r | extra for r, extra in zip(records, extras)]
        metrics[kind] = summarise(kind, records)
        samples.extend(records)
    metrics["normalisation"] = NORMALISATION  # type: ignore[assignment]
    return metrics, samples
