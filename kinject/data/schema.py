"""The typed records that flow through kinject: documents, facts, probes and the corpus.

Every record converts to and from a plain ``dict`` (one JSONL line). ``from_dict`` raises
:class:`KeyError` naming the first missing required field and :class:`ValueError` for a wrong
value; the JSONL reader turns both into a :class:`~kinject.errors.UserError` that names the
file and line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

ProbeKind = Literal["qa", "mcq", "cloze", "retention"]
PROBE_KINDS: tuple[str, ...] = ("qa", "mcq", "cloze", "retention")


def _take(row: dict[str, Any], cls: type) -> dict[str, Any]:
    """Keep the keys of ``row`` that are fields of ``cls``; raise KeyError for a missing one."""
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    for name in sorted(required):
        if name not in row:
            raise KeyError(name)
    return {k: v for k, v in row.items() if k in names}


def _need_id(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("field 'id' must be a non-empty string")


# The instruction that opens a QA header unless a corpus gives its own (the retention header and
# replay's question header use it too).
QA_INSTRUCTION = "Answer the questions."


@dataclass
class Fact:
    """One atomic fact: a sentence that states it and the short answer it contains.

    ``answer_start`` is the character offset of ``answer`` in ``text`` (-1 when unknown);
    ``entities`` are spans the latent paraphraser must keep unperturbed (subject names etc.).
    """

    id: str
    doc_id: str
    text: str
    answer: str
    subject: str = ""
    relation: str = ""
    answer_start: int = -1
    entities: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Fact:
        return cls(**_take(row, cls))


@dataclass
class Document:
    """A source document (one article, one file or one sentence) to inject. ``date``: when it was
    written or became true (any sortable string, ISO dates sort right), for ``stream.split=date``."""

    id: str
    text: str
    title: str = ""
    date: str = ""

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Document:
        doc = cls(**_take(row, cls))
        _need_id(doc.id)
        if not isinstance(doc.text, str) or not doc.text.strip():
            raise ValueError("field 'text' must be a non-empty string")
        if not isinstance(doc.title, str):
            raise ValueError("field 'title' must be a string")
        if not isinstance(doc.date, str):
            raise ValueError("field 'date' must be a string")
        return doc


@dataclass
class Probe:
    """One evaluation item.

    kind ``qa``/``retention``: open question, scored against ``answers`` (any alias counts).
    kind ``cloze``: ``question`` is a sentence prefix the answer completes.
    kind ``mcq``: ``choices`` with the gold index ``label``; scored by log-likelihood.
    ``generated``: the generator that wrote the probe (``kinject questions``), empty otherwise.
    """

    id: str
    kind: str
    question: str
    answers: list[str]
    choices: list[str] = field(default_factory=list)
    label: int = -1
    fact_id: str = ""
    doc_id: str = ""
    generated: str = ""

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Probe:
        row = dict(row)
        if "answers" not in row and "answer" in row:
            row["answers"] = [row.pop("answer")]
        probe = cls(**_take(row, cls))
        _need_id(probe.id)
        if probe.kind not in PROBE_KINDS:
            raise ValueError(f"field 'kind' must be one of {', '.join(PROBE_KINDS)}, not {probe.kind!r}")
        if isinstance(probe.answers, str):
            probe.answers = [probe.answers]
        if not probe.answers or not all(isinstance(a, str) and a.strip() for a in probe.answers):
            raise ValueError("field 'answers' must hold at least one non-empty string")
        if not isinstance(probe.question, str) or not probe.question.strip():
            raise ValueError("field 'question' must be a non-empty string")
        if not isinstance(probe.choices, list) or not all(isinstance(c, str) and c.strip() for c in probe.choices):
            raise ValueError("field 'choices' must be a list of non-empty strings")
        if type(probe.label) is not int:
            raise ValueError("field 'label' must be an integer")
        for name in ("fact_id", "doc_id", "generated"):
            if not isinstance(getattr(probe, name), str):
                raise ValueError(f"field {name!r} must be a string")
        if probe.kind == "mcq" and not (len(probe.choices) >= 2 and 0 <= probe.label < len(probe.choices)):
            raise ValueError("an mcq probe needs >= 2 'choices' and a 'label' indexing one of them")
        return probe


@dataclass
class Corpus:
    """Everything one benchmark needs: what to inject, how to ask about it, how to prompt.

    ``paraphrases`` maps a document id to alternative realisations of that document (gold for
    the built-in benchmark). ``train_facts``/``train_paraphrases``/``train_qa`` are a split
    disjoint from the injected knowledge (for training a paraphraser or QA demonstrations).
    ``fewshot`` holds (question, answer) pairs for the closed-book prompt.
    """

    name: str
    documents: list[Document]
    probes: list[Probe]
    facts: list[Fact] = field(default_factory=list)
    paraphrases: dict[str, list[str]] = field(default_factory=dict)
    fewshot: list[tuple[str, str]] = field(default_factory=list)
    instruction: str = QA_INSTRUCTION
    train_facts: list[Fact] = field(default_factory=list)
    train_paraphrases: dict[str, list[str]] = field(default_factory=dict)
    train_qa: list[Probe] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def probes_of(self, kind: str) -> list[Probe]:
        return [p for p in self.probes if p.kind == kind]

    def content_hash(self) -> str:
        """sha256 (first 16 hex digits) of the documents, paraphrases, probes and prompt."""
        payload = {
            "documents": [{k: v for k, v in dataclasses.asdict(d).items() if k != "date" or v}  # as before dates
                          for d in self.documents],
            "paraphrases": self.paraphrases,
            "probes": [dataclasses.asdict(p) for p in self.probes],
            "fewshot": self.fewshot,
            "instruction": self.instruction,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
