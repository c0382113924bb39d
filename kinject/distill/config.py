"""The ``distill:`` config section (context distillation, the ``distill`` method)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kinject.checks import Check, at_least, one_of, positive, seed_range

QUERY_SOURCES = ("templated", "generated", "self-study", "continuation")
LOSSES = ("forward_kl", "reverse_kl", "ce")


@dataclass
class DistillConfig:
    """How ``distill`` builds its prompts, asks the teacher and trains the student.

    - ``queries``: where the prompts come from, per document: ``templated`` (built-in benchmark
      only: questions about the document's facts in the world's demonstration wordings, which no
      probe uses), ``generated`` (questions the ``generate:`` LLM writes about the document, as
      ``kinject questions`` does), ``self-study`` (requests of five kinds the ``generate:`` LLM
      writes about the document), or ``continuation`` (prefixes cut from the document's own
      sentences: the teacher reads the document and continues the prefix);
    - ``per_document``: at most this many prompts per document;
    - ``context``: what the teacher reads before each prompt: ``document`` (the whole document)
      or ``retrieved`` (its top ``retrieval.k`` passages for the prompt, as ``rag`` places them);
    - ``answer``: the teacher's answer, ``greedy`` or sampled (``sample``, at ``answer_temperature``;
      prompt distillation samples at 1.5), at most ``max_new_tokens``, cut after the first newline;
    - ``top_k``: the teacher's most likely tokens kept at each answer token;
    - ``loss``: ``forward_kl`` (KL(teacher || student) over the top k), ``reverse_kl``, or ``ce``
      (cross-entropy on the teacher's answer tokens); ``kl_temperature``: both distributions
      softened by it in the KL forms (prompt distillation reportedly uses 2);
    - ``documents``: also train on the documents themselves (next-token loss), mixed in;
    - ``epochs``: passes over the distilled prompts (and the documents);
    - ``seed``: prompt choice and answer sampling (the same for every run seed); ``cache``: reuse
      teacher targets stored under ``$KINJECT_CACHE/distill`` (keyed by content).
    """

    queries: str = "templated"
    per_document: int = 8
    context: str = "document"
    answer: str = "greedy"
    answer_temperature: float = 1.5
    max_new_tokens: int = 32
    top_k: int = 20
    loss: str = "forward_kl"
    kl_temperature: float = 1.0
    documents: bool = True
    epochs: float = 3.0
    batch_size: int = 8
    seed: int = 0
    cache: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "queries": one_of(*QUERY_SOURCES), "per_document": at_least(1), "context": one_of("document", "retrieved"),
        "answer": one_of("greedy", "sample"), "answer_temperature": positive, "max_new_tokens": at_least(1),
        "top_k": at_least(1), "loss": one_of(*LOSSES), "kl_temperature": positive, "epochs": positive,
        "batch_size": at_least(1), "seed": seed_range}
