"""QA demonstrations about facts disjoint from the probes: the data of the ``+qa`` training mix.

A model fine-tuned on documents often memorises them without learning to answer questions about
them; question-answer pairs about *other* facts, trained with, before or after the documents, teach
that skill. ``qa.source`` says where the pairs come from:

- ``train``: the corpus's own disjoint split. Built-in benchmark: the train entities' facts, asked
  in question wordings no probe uses (``data.builtin.demo_questions=shared`` asks them in the
  probes' wordings instead, which flatters the result); LaPael SQuAD: the train split's qa.jsonl.
- a QA JSONL file: one ``{"question", "answer" | "answers", "context"?}`` per line; ``context``
  is the passage the pair comes from (trained with ``qa.documents``). ``kinject questions
  --demonstrations`` writes one from documents held apart from the injected ones.

Every pair that touches a probe is dropped, with the reason counted: the same question, an answer
equal to a probe's answer, a source document among the injected ones (by id or by text), or a
probed subject named in it. ``qa.ratio`` pairs per injected fact are then drawn with the run seed.
A pair is trained as ``"Question: q\\nAnswer: a"``, the evaluation prompt's own format, with the loss
on every token or (``qa.loss=answer``, as instruction-tuning does) on the answer's alone, and with
``qa.header`` (the default) behind the evaluation's few-shot header too (its instruction and
examples, never a target), so that the pairs are trained as the probes will be asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, one_of, positive
from kinject.data.jsonl import load_records
from kinject.data.schema import Corpus, Probe
from kinject.errors import UserError
from kinject.evaluation.metrics import tokens
from kinject.evaluation.runner import qa_header, qa_suffix
from kinject.training.trainer import Completion, TrainText

MODES = ("mixed", "before", "after")
LOSSES = ("all", "answer")


@dataclass
class QAConfig:
    """The ``+qa`` training mix.

    mode: ``mixed`` (demonstrations shuffled in with the method's own training texts, same passes),
    ``before`` (a first phase of ``epochs`` passes over the demonstrations alone, plain
    fine-tuning, then the method as usual: pre-instruction-tuning) or ``after`` (the
    demonstrations' source documents mixed into the method's texts, so that their facts are known
    first, then ``epochs`` passes over the QA pairs alone: instruction-tuning after continued
    pre-training, which Jiang et al. 2024 compare with ``before``). ``ratio``: demonstrations per
    injected fact (documents when the corpus lists no facts); None = every usable one.
    ``documents``: also train on the sentences/passages the demonstrations come from, with up to
    ``paraphrases`` paraphrases of each where the corpus's train split has them (the built-in
    benchmark, LaPael SQuAD): knowledge seen in several phrasings is what QA training can teach
    a model to extract (Allen-Zhu & Li, Physics of LMs 3.1). ``loss``: ``all`` (next-token loss on
    the whole pair) or ``answer`` (on the answer's tokens only; the question is context).
    ``pairs``: false trains the documents alone, without their questions: the control that tells
    the skill the pairs teach from the extra text they bring. ``header``: each pair follows the
    evaluation's few-shot header (the corpus's instruction and examples), as every probe does; a
    pair whose answer is one of the header's would then be a copying exercise, and is dropped.
    The defaults (``before``, ``answer``, ``header``) scored best of twelve designs on the built-in
    benchmark's development world, and beat ``ft-para`` on the test seeds (README, Results).
    """

    mode: str = "before"
    source: str = "train"
    ratio: float | None = 1.0
    documents: bool = True
    paraphrases: int = 0
    epochs: float = 3.0
    loss: str = "answer"
    pairs: bool = True
    header: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "mode": one_of(*MODES), "ratio": positive, "paraphrases": at_least(0), "epochs": positive,
        "loss": one_of(*LOSSES)}


@dataclass
class Demonstrations:
    """The texts one ``+qa`` run trains on (``pairs``: the formatted QA pairs; ``documents``: their
    sources), how (``mode``, ``epochs``: passes in a phase of their own), and what was kept and
    dropped (``info``)."""

    pairs: list[TrainText]
    documents: list[str]
    mode: str
    epochs: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[TrainText]:
        return self.pairs + self.documents

    def phases(self) -> tuple[list[TrainText], list[TrainText], list[TrainText]]:
        """(trained alone before the method's texts, mixed into them, trained alone after them)."""
        if self.mode == "before":
            return self.texts, [], []
        if self.mode == "after":
            return [], self.documents, self.pairs
        return [], self.texts, []


def demonstration_text(pair: Probe, loss: str, header: str = "") -> TrainText:
    """A pair in the closed-book prompt's own format: ``header`` (the few-shot header, or none), the
    probe's prompt, then its first answer. The loss is on the answer alone (``loss="answer"``) or
    on the whole pair (``"all"``), never on the header."""
    prompt, answer = qa_suffix(pair), f" {pair.answers[0]}"
    if loss == "answer":
        return Completion(header + prompt, answer)
    return Completion(header, prompt + answer) if header else prompt + answer


def check_qa_config(cfg: QAConfig) -> None:
    check_section(cfg, "qa")
    if cfg.source != "train" and not Path(cfg.source).is_file():
        raise UserError(f"qa.source: {cfg.source}: no such file (give 'train' or a QA JSONL)")


def _key(text: str) -> str:
    return " ".join(tokens(text))


def _parse_row(row: dict[str, Any]) -> tuple[Probe, str | None]:
    probe = Probe.from_dict({**row, "id": "demo", "kind": "qa"})
    context = row.get("context")
    return probe, context if isinstance(context, str) and context.strip() else None


def _candidates(corpus: Corpus, source: str) -> tuple[list[Probe], dict[str, str]]:
    """(pairs, source text by pair id): the split's facts, or the JSONL rows' ``context``."""
    if source == "train":
        sentences = {f.id: f.text for f in corpus.train_facts}
        return corpus.train_qa, {p.id: sentences[p.fact_id] for p in corpus.train_qa if p.fact_id in sentences}
    pairs, contexts = [], {}
    for i, (probe, context) in enumerate(load_records(source, _parse_row), 1):
        probe.id = f"demo/{i}"
        pairs.append(probe)
        if context is not None:
            contexts[probe.id] = context
    return pairs, contexts


class ProbeFootprint:
    """What of the probed knowledge a demonstration must not contain (normalised as the metrics do)."""

    def __init__(self, corpus: Corpus):
        self.questions = {_key(p.question) for p in corpus.probes}
        self.answers = {_key(a) for p in corpus.probes for a in p.answers}
        self.doc_ids = {d.id for d in corpus.documents}
        self.doc_texts = {_key(d.text) for d in corpus.documents} | {_key(f.text) for f in corpus.facts}
        names = [s for f in corpus.facts for s in (f.subject, *f.entities)] + [d.title for d in corpus.documents]
        self.subjects = {k for k in map(_key, names) if k}

    def overlap(self, pair: Probe, source_text: str | None) -> str | None:
        """Why ``pair`` (with the text it comes from) touches the probes, or None if it does not."""
        if _key(pair.question) in self.questions:
            return "question"
        if any(_key(a) in self.answers for a in pair.answers):
            return "answer"
        if pair.doc_id in self.doc_ids or (source_text is not None and _key(source_text) in self.doc_texts):
            return "document"
        text = f" {_key(' '.join([pair.question, *pair.answers, source_text or '']))} "
        if any(f" {s} " in text for s in self.subjects):
            return "subject"
        return None


def select_demonstrations(corpus: Corpus, cfg: QAConfig, seed: int, clear_of: Corpus | None = None
                          ) -> Demonstrations:
    """The demonstrations (and, with ``qa.documents``, their sources) one run trains on:
    ``qa.ratio`` per fact of ``corpus``, none touching the probes, documents or subjects of
    ``clear_of`` (default ``corpus``; in a stream, every update's)."""
    check_qa_config(cfg)
    pairs, sources = _candidates(corpus, cfg.source)
    if not pairs:
        raise UserError(f"qa.source {cfg.source!r}: corpus {corpus.name!r} has no QA pairs apart from its probes "
                        "(give a QA JSONL)")
    footprint = ProbeFootprint(clear_of or corpus)
    header = qa_header(corpus.instruction, corpus.fewshot) if cfg.header else ""
    header_answers = {_key(a) for _, a in corpus.fewshot} if cfg.header else set()
    kept: list[Probe] = []
    dropped: dict[str, int] = {}
    for pair in pairs:
        reason = footprint.overlap(pair, sources.get(pair.id))
        if reason is None and any(_key(a) in header_answers for a in pair.answers):
            reason = "in_header"
        if reason is None:
            kept.append(pair)
        else:
            dropped[reason] = dropped.get(reason, 0) + 1
    if not kept:
        raise UserError(f"qa.source {cfg.source!r}: every one of its {len(pairs)} QA pairs touches a probe "
                        f"(dropped: {dropped})")
    n_facts = len(corpus.facts) or len(corpus.documents)
    n = len(kept) if cfg.ratio is None else min(len(kept), max(1, round(cfg.ratio * n_facts)))
    chosen = random.Random(seed).sample(kept, n)
    texts = [demonstration_text(p, cfg.loss, header) for p in chosen] if cfg.pairs else []
    documents: list[str] = []
    if cfg.documents:
        for p in chosen:
            if p.id in sources:
                rephrased = corpus.train_paraphrases.get(p.fact_id, []) if cfg.source == "train" else []
                documents += [sources[p.id], *rephrased[:cfg.paraphrases]]
        documents = list(dict.fromkeys(documents))
    if not texts and not documents:
        raise UserError(f"qa.pairs is false and qa.source {cfg.source!r} gives no document to train instead "
                        "(qa.documents true and a source with contexts)")
    info = {"source": cfg.source, "mode": cfg.mode, "loss": cfg.loss, "header": cfg.header, "pairs": len(pairs),
            "dropped": dropped, "usable": len(kept), "demonstrations": n, "trained_pairs": len(texts),
            "documents": len(documents), **_wording(corpus, cfg.source)}
    return Demonstrations(texts, documents, cfg.mode, cfg.epochs, info)


def _wording(corpus: Corpus, source: str) -> dict[str, str]:
    wording = corpus.meta.get("demo_questions")
    return {"question_wording": wording} if source == "train" and wording else {}
