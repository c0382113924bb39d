"""Probes for a corpus that has none: a QA pair and a 4-way multiple-choice question per document,
written by an LLM (the ``generate`` config) and filtered.

Ovadia et al. built their current-events benchmark this way (an LLM wrote multiple-choice
questions about each news article). The LLM is asked for one question the document answers, the
answer copied from the document, and three plausible wrong answers, in a fixed format shown by one
worked example (without it the embedded 135M model kept the format in 10 of 96 replies about six
SQuAD train passages; with it, 23 of 48)::

    Question: ...
    Answer: ...
    Wrong: ...; ...; ...

``questions.samples`` replies are asked per document. A reply is dropped (the reason counted) when
it does not parse (``format``), when its answer does not occur in the document as normalised
tokens (``answer``), or when its question already states the answer (``leak``). Its
multiple-choice form needs three wrong answers that differ from the answer and from each other.
The first passing reply that has one is kept, else the first passing reply as a QA probe alone
(``no_mcq`` counts those documents). Every probe records
its generator in ``generated``, and results.json counts them (``data.generated_probes``).

The same pairs, about documents held apart from the ones injected, are QA demonstrations for
``+qa`` (``demonstration_rows``: each with its document as ``context``, for ``qa.source=FILE``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, seed_range
from kinject.data.schema import Document, Probe
from kinject.evaluation.metrics import contains_run, tokens
from kinject.generation.cache import GenerationCost, cached_sample
from kinject.generation.generators import GenerationConfig, make_generator

PROMPT = ("Read the text below. Write one question that the text answers, its answer (a short phrase copied "
          "from the text), and three short answers that sound plausible but are wrong. Reply in exactly this "
          "form, as in the example.\n\nExample\nText: The Eiffel Tower was completed in 1889 for the World's Fair "
          "in Paris.\nQuestion: In which year was the Eiffel Tower completed?\nAnswer: 1889\nWrong: 1901; 1875; "
          "1920\n\nNow your turn.\nText: {text}")
REASONS = ("format", "answer", "leak")
_FIELD = re.compile(r"^\s*(question|answer|wrong)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass
class QuestionConfig:
    """``kinject questions``: ``samples`` replies asked per document (the first good one is kept);
    ``mcq``: also write the 4-way multiple-choice form; ``seed``: the order of the choices."""

    samples: int = 4
    mcq: bool = True
    seed: int = 0

    CHECKS: ClassVar[dict[str, Check]] = {"samples": at_least(1), "seed": seed_range}


def parse_reply(reply: str) -> tuple[str, str, list[str]] | None:
    """(question, answer, wrong answers) from a reply in the prompt's format, or None."""
    fields: dict[str, str] = {}
    for m in _FIELD.finditer(reply):
        fields.setdefault(m.group(1).lower(), m.group(2).strip())
    if not fields.get("question") or not fields.get("answer"):
        return None
    wrong = [w.strip().rstrip(".") for w in fields.get("wrong", "").split(";") if w.strip()]
    return fields["question"], fields["answer"].rstrip("."), wrong


def check_pair(question: str, answer: str, source: str) -> str | None:
    """Why a (question, answer) about ``source`` is dropped, or None."""
    if not contains_run(tokens(source), tokens(answer)):
        return "answer"
    if contains_run(tokens(question), tokens(answer)):
        return "leak"
    return None


def distractors(answer: str, wrong: list[str]) -> list[str] | None:
    """Three wrong answers, distinct from the answer and each other (normalised), or None."""
    seen = {tuple(tokens(answer))}
    out = []
    for w in wrong:
        key = tuple(tokens(w))
        if key and key not in seen:
            seen.add(key)
            out.append(w)
    return out[:3] if len(out) >= 3 else None


def generate_questions(documents: list[Document], cfg: QuestionConfig, gen: GenerationConfig,
                       cache: Path | None) -> tuple[list[Probe], dict[str, Any]]:
    """QA (and MCQ) probes for each document whose replies pass, and the counts and cost."""
    check_section(cfg, "questions")
    generator = make_generator(gen)
    cost = GenerationCost()
    requests = [[{"role": "user", "content": PROMPT.format(text=d.text)}] for d in documents]
    sampled = cached_sample(generator, requests, cfg.samples, cache, cost)
    rng = random.Random(cfg.seed)
    dropped = dict.fromkeys((*REASONS, "no_mcq"), 0)
    probes: list[Probe] = []
    name = f"{gen.backend}:{gen.model}"
    for doc, s in zip(documents, sampled):
        best: tuple[str, str, list[str] | None] | None = None  # a reply with an MCQ form wins
        for reply in s.replies:
            parsed = parse_reply(reply)
            why = "format" if parsed is None else check_pair(parsed[0], parsed[1], doc.text)
            if why is not None:
                dropped[why] += 1
                continue
            others = distractors(parsed[1], parsed[2]) if cfg.mcq else None
            if best is None or (others is not None and best[2] is None):
                best = (parsed[0], parsed[1], others)
            if others is not None or not cfg.mcq:
                break
        if best is None:
            continue
        question, answer, others = best
        probes.append(Probe(f"gen-qa-{doc.id}", "qa", question, [answer], doc_id=doc.id, generated=name))
        if others is not None:
            choices = [answer, *others]
            rng.shuffle(choices)
            probes.append(Probe(f"gen-mcq-{doc.id}", "mcq", question, [answer], choices=choices,
                                label=choices.index(answer), doc_id=doc.id, generated=name))
        elif cfg.mcq:
            dropped["no_mcq"] += 1
    qa = sum(1 for p in probes if p.kind == "qa")
    info = {"documents": len(documents), "replies": cfg.samples * len(documents), "qa": qa,
            "mcq": len(probes) - qa, "documents_without": len(documents) - qa, "dropped": dropped,
            "generator": name, "cost": cost.to_dict()}
    return probes, info


def demonstration_rows(probes: list[Probe], documents: list[Document]) -> list[dict[str, Any]]:
    """The QA probes as ``qa.source`` rows: ``{question, answers, context, generated}``, the context
    being the text of the document each was written from (MCQ forms left out)."""
    texts = {d.id: d.text for d in documents}
    return [{"question": p.question, "answers": p.answers, "context": texts[p.doc_id], "generated": p.generated}
            for p in probes if p.kind == "qa"]
