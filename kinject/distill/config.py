"""The ``distill:`` config section (context distillation, the ``distill`` method)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kinject.checks import Check, at_least, one_of, positive, seed_range

QUERY_SOURCES = ("templated", "generated", "trivia", "self-study", "continuation")
TEACHER_ANSWERS = ("greedy", "sample")  # distill.answer, replay.answer
FORMATS = ("qa", "chat")
LOSSES = ("forward_kl", "reverse_kl", "ce")


@dataclass
class DistillConfig:
    """How ``distill`` builds its prompts, asks the teacher and trains the student.

    - ``queries``: where the prompts come from, per document: ``templated`` (built-in benchmark
      only: questions about the document's facts in the world's demonstration wordings, which no
      probe uses), ``generated`` (questions the ``generate:`` LLM writes about the document, as
      ``kinject questions`` does), ``trivia`` (five trivia questions a request that the
      ``generate:`` LLM writes about the document, as prompt distillation has its base model
      write them), ``self-study`` (requests of five kinds the ``generate:`` LLM
      writes about the document), or ``continuation`` (prefixes cut from the document's own
      sentences: the teacher reads the document and continues the prefix);
    - ``per_document``: at most this many prompts per document;
    - ``format``: how prompts are put: ``qa`` (as the evaluation asks: the corpus's few-shot header,
      "Question: ...\nAnswer:", the answer cut after its first newline) or ``chat`` (prompt
      distillation's: the model's chat template, the teacher's user turn the context, a ``---``
      line and the question, the student's the question alone, the answer running to the end
      of the assistant's turn); continuation prompts are asked bare, in ``qa`` only;
    - ``context``: what the teacher reads before each prompt: ``document`` (the whole document)
      or ``retrieved`` (its top ``retrieval.k`` passages for the prompt, as ``rag`` places them);
    - ``answer``: the teacher's answer, ``greedy`` or sampled (``sample``, at ``answer_temperature``;
      prompt distillation samples at 1.5, from its ``answer_top_k`` = 50 most likely tokens; 0: the
      whole vocabulary), at most ``max_new_tokens``;
    - ``top_k``: the teacher's most likely tokens kept at each answer token;
    - ``loss``: ``forward_kl`` (KL(teacher || student) over the top k), ``reverse_kl``, or ``ce``
      (cross-entropy on the teacher's answer tokens); ``kl_temperature``: both distributions
      softened by it in the KL forms (prompt distillation uses 2); ``average``: the loss as the
      mean over all trained tokens of a batch (``token``) or over its rows of each row's own mean
      (``sequence``, prompt distillation's);
    - ``filter``: which of the teacher's answers to questions are trained: ``none`` (all) or
      ``grounded`` (only those whose words occur, in order, in what the teacher read and not in
      the question: an answer not found there is taken from elsewhere, as a few-shot example's
      answer copied, a misspelt name, or a guess; one found in the question repeats it);
      continuation prompts are all kept;
    - ``documents``: also train on the documents themselves (next-token loss), mixed in;
    - ``epochs``: passes over the distilled prompts (and the documents);
    - ``seed``: prompt choice and answer sampling (the same for every run seed); ``cache``: reuse
      teacher targets stored under ``$KINJECT_CACHE/distill`` (keyed by content).

    The defaults ``loss=ce``, ``filter=grounded``, ``epochs=10`` were chosen on development worlds
    1000-1003 and confirmed on fresh seeds 12-14 (docs/results.md); the paper's loss without a
    filter is ``loss=forward_kl filter=none``.
    """

    queries: str = "templated"
    per_document: int = 8
    format: str = "qa"
    context: str = "document"
    answer: str = "greedy"
    answer_temperature: float = 1.5
    answer_top_k: int = 0
    max_new_tokens: int = 32
    top_k: int = 20
    loss: str = "ce"
    kl_temperature: float = 1.0
    average: str = "token"
    filter: str = "grounded"
    documents: bool = True
    epochs: float = 10.0
    batch_size: int = 8
    seed: int = 0
    cache: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "queries": one_of(*QUERY_SOURCES), "per_document": at_least(1), "format": one_of(*FORMATS),
        "context": one_of("document", "retrieved"),
        "answer": one_of(*TEACHER_ANSWERS), "answer_temperature": positive,
        "answer_top_k": at_least(0), "max_new_tokens": at_least(1),
        "top_k": at_least(1), "loss": one_of(*LOSSES), "kl_temperature": positive,
        "average": one_of("token", "sequence"),
        "filter": one_of("none", "grounded"), "epochs": positive,
        "batch_size": at_least(1), "seed": seed_range}
