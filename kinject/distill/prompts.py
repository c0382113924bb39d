"""The prompts ``distill`` asks about each document (``distill.queries``).

A :class:`DistillPrompt` is a question (asked as the evaluation asks: the corpus's few-shot header,
then "Question: ...\\nAnswer:") or a continuation prefix (asked bare, as a cloze probe is). The
teacher reads the document before it; the student sees the prompt alone.

- ``templated``: the built-in benchmark only. Each fact of the document asked in its relation's
  demonstration wordings (two a relation), which no probe uses: the templated stand-in for
  generated questions, as the gold paraphrases stand to generated ones. Labelled so in every cell.
- ``generated``: questions the ``generate:`` LLM writes about the document, with the prompt,
  parser and checks of ``kinject questions`` (a question, an answer copied from the text, not the
  answer in the question); ``2 x per_document`` replies asked, the distinct passing questions kept.
- ``trivia``: the ``generate:`` LLM asked, per request, for five trivia questions about the
  document, each in ``<question>`` tags, that make sense without the text (prompt distillation's
  question writer, which is the base model itself, sampled at 1.5 from its top 50 tokens; kinject
  samples at ``generate.temperature`` / ``top_p``); ``ceil(2 x per_document / 5)`` replies asked,
  the distinct questions (3 to 40 words, ending in "?"; from the tags, or from the reply's lines
  when it has none) kept.
- ``self-study``: requests the ``generate:`` LLM writes about the document when asked, in turn, for
  each of five kinds of request (a factual question, a summary, a structuring, a use, a creative
  angle), in the manner of Cartridges' self-study seed prompts (arXiv 2506.06266); the first line
  of each reply, 3 to 40 words, distinct, kept.
- ``continuation``: each sentence of the document cut after the first half of its words (at
  least two): the teacher reads the document and continues the prefix.

Prompts are drawn per document in a fixed order (``distill.seed``), at most ``per_document``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from kinject.data.builtin.templates import RELATIONS, fill
from kinject.data.schema import Corpus
from kinject.distill.config import DistillConfig
from kinject.generation.cache import GenerationCost, cached_sample, generation_cache
from kinject.generation.generators import GenerationConfig, make_generator
from kinject.generation.questions import PROMPT, check_pair, parse_reply
from kinject.retrieval.chunking import chunk_documents

_TEMPLATES = {r.name: r.demonstrations for r in RELATIONS}


@dataclass(frozen=True)
class DistillPrompt:
    """One prompt about document ``doc_id``: ``kind`` ``question`` or ``continuation``."""

    doc_id: str
    text: str
    kind: str


def templated_prompts(corpus: Corpus) -> list[DistillPrompt]:
    """Every fact asked in each demonstration wording of its relation (built-in facts only)."""
    return [DistillPrompt(f.doc_id, fill(t, f.subject, f.answer), "question")
            for f in corpus.facts if f.relation in _TEMPLATES for t in _TEMPLATES[f.relation]]


def continuation_prompts(corpus: Corpus) -> list[DistillPrompt]:
    """The first half of the words (at least two) of each sentence with four words or more."""
    out = []
    for chunk in chunk_documents(corpus.documents, "sentence"):
        words = chunk.text.split()
        if len(words) >= 4:
            out.append(DistillPrompt(chunk.doc_id, " ".join(words[: max(2, len(words) // 2)]), "continuation"))
    return out


def generated_prompts(corpus: Corpus, per_document: int, gen: GenerationConfig
                      ) -> tuple[list[DistillPrompt], dict[str, Any]]:
    """Distinct questions the ``gen`` LLM writes about each document that pass the checks of
    ``kinject questions`` (2 x ``per_document`` replies asked per document); and the cost."""
    cost = GenerationCost()
    requests = [[{"role": "user", "content": PROMPT.format(text=d.text)}] for d in corpus.documents]
    sampled = cached_sample(make_generator(gen), requests, 2 * per_document, generation_cache(gen.cache), cost)
    out, dropped = [], 0
    for doc, s in zip(corpus.documents, sampled):
        seen: set[str] = set()
        for reply in s.replies:
            parsed = parse_reply(reply)
            if parsed is None or check_pair(parsed[0], parsed[1], doc.text) is not None:
                dropped += 1
            elif parsed[0] not in seen:
                seen.add(parsed[0])
                out.append(DistillPrompt(doc.id, parsed[0], "question"))
    return out, {"generator": f"{gen.backend}:{gen.model}", "dropped": dropped, "cost": cost.to_dict()}


TRIVIA_EXAMPLES = ("In which year did the Berlin Wall fall?", "Which planet is closest to the Sun?")
TRIVIA_PROMPT = (
    "Read the text below, then write five hard trivia questions that it answers. Each question must "
    "make sense to someone who has not seen the text, and none may offer answer options. Put each "
    "question in <question></question> tags and write nothing else, like this:\n"
    + "".join(f"<question>{q}</question>\n" for q in TRIVIA_EXAMPLES) + "\nText: {text}")
_TAGGED = re.compile(r"<question>(.*?)</question>", re.DOTALL)


_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|[A-Za-z]:)\s*")


def trivia_questions(reply: str) -> list[str]:
    """The questions in ``reply``'s ``<question>`` tags or, in a reply without tags (a small model
    often drops them), its lines with any list mark ("1.", "-", "A:") taken off; those 3 to 40
    words long, ending in "?", and not one of the prompt's examples."""
    found = _TAGGED.findall(reply) or [_LIST_MARK.sub("", line) for line in reply.splitlines()]
    found = [" ".join(q.split()) for q in found]
    return [q for q in found if 3 <= len(q.split()) <= 40 and q.endswith("?") and q not in TRIVIA_EXAMPLES]


def trivia_prompts(corpus: Corpus, per_document: int, gen: GenerationConfig
                   ) -> tuple[list[DistillPrompt], dict[str, Any]]:
    """Distinct trivia questions the ``gen`` LLM writes about each document, five a reply asked
    (``ceil(2 x per_document / 5)`` replies per document); and the counts and cost."""
    cost = GenerationCost()
    requests = [[{"role": "user", "content": TRIVIA_PROMPT.format(text=d.text)}] for d in corpus.documents]
    sampled = cached_sample(make_generator(gen), requests, math.ceil(2 * per_document / 5),
                            generation_cache(gen.cache), cost)
    out, empty = [], 0
    for doc, s in zip(corpus.documents, sampled):
        seen: set[str] = set()
        for reply in s.replies:
            questions = trivia_questions(reply)
            empty += not questions
            for q in questions:
                if q not in seen:
                    seen.add(q)
                    out.append(DistillPrompt(doc.id, q, "question"))
    return out, {"generator": f"{gen.backend}:{gen.model}", "replies_without_questions": empty,
                 "cost": cost.to_dict()}


SELF_STUDY_SEEDS = (
    "Write one question that someone who has read the text below could answer from it alone.",
    "Write one request asking for a one-sentence summary of a specific part of the text below.",
    "Write one request asking to list or organise some of the details in the text below.",
    "Write one question about how a detail of the text below could be used or matters in practice.",
    "Write one creative request (a riddle, a headline, a comparison) about a detail of the text below.",
)


def self_study_prompts(corpus: Corpus, per_document: int, gen: GenerationConfig
                       ) -> tuple[list[DistillPrompt], dict[str, Any]]:
    """Requests about each document the ``gen`` LLM writes from :data:`SELF_STUDY_SEEDS` (the seeds
    cycled, 2 x ``per_document`` requests per document); and the counts and cost."""
    cost = GenerationCost()
    n = 2 * per_document
    requests, owners = [], []
    for doc in corpus.documents:
        for i in range(n):
            seed = SELF_STUDY_SEEDS[i % len(SELF_STUDY_SEEDS)]
            requests.append([{"role": "user", "content": f"{seed} Reply with the request only.\n\nText: {doc.text}"}])
            owners.append(doc.id)
    sampled = cached_sample(make_generator(gen), requests, 1, generation_cache(gen.cache), cost)
    out, dropped, seen = [], 0, set()
    for doc_id, s in zip(owners, sampled):
        line = s.replies[0].strip().split("\n", 1)[0].strip().strip('"')
        if not 3 <= len(line.split()) <= 40 or (doc_id, line) in seen:
            dropped += 1
            continue
        seen.add((doc_id, line))
        out.append(DistillPrompt(doc_id, line, "question"))
    return out, {"generator": f"{gen.backend}:{gen.model}", "dropped": dropped, "cost": cost.to_dict()}


def build_prompts(corpus: Corpus, cfg: DistillConfig, gen: GenerationConfig
                  ) -> tuple[list[DistillPrompt], dict[str, Any]]:
    """At most ``cfg.per_document`` prompts per document from ``cfg.queries``, and what they are."""
    info: dict[str, Any] = {"queries": cfg.queries}
    if cfg.queries == "templated":
        pool = templated_prompts(corpus)
        info["note"] = "templated from the built-in world's facts (demonstration wordings no probe uses)"
    elif cfg.queries == "continuation":
        pool = continuation_prompts(corpus)
    elif cfg.queries == "trivia":
        pool, info["generation"] = trivia_prompts(corpus, cfg.per_document, gen)
    elif cfg.queries == "self-study":
        pool, info["generation"] = self_study_prompts(corpus, cfg.per_document, gen)
    else:
        pool, info["generation"] = generated_prompts(corpus, cfg.per_document, gen)
    by_doc: dict[str, list[DistillPrompt]] = {}
    for p in pool:
        by_doc.setdefault(p.doc_id, []).append(p)
    rng = random.Random(cfg.seed)
    chosen = []
    for doc in corpus.documents:
        mine = by_doc.get(doc.id, [])
        chosen += rng.sample(mine, min(cfg.per_document, len(mine)))
    info.update(prompts=len(chosen), documents_with_prompts=sum(1 for d in corpus.documents if by_doc.get(d.id)))
    return chosen, info
