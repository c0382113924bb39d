"""The broader retention measure's data, kinject's own and shipped in the package (nothing fetched).

- ``general_candidates.jsonl``: general-knowledge items written for kinject, each
  {question, answer, choices (4, the answer among them), topic}.
- ``general_qa.jsonl`` / ``general_mcq.jsonl``: the candidates the default model answers correctly
  before injection, as a short answer (the ``retention`` kind's prompt and scoring) and as a
  multiple choice (the ``mcq`` kind's log-likelihood scoring), made by
  ``python -m kinject.data.builtin.select_general``; eval kinds ``general_qa`` and ``general_mcq``.
- ``general_text.jsonl``: short encyclopedia-style passages on everyday topics, written for
  kinject, that no method trains on; eval kind ``general_kl`` (:mod:`kinject.evaluation.drift`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinject.data.jsonl import load_records
from kinject.data.schema import Probe

HERE = Path(__file__).parent
GENERAL_CANDIDATES_FILE = HERE / "general_candidates.jsonl"
GENERAL_QA_FILE = HERE / "general_qa.jsonl"
GENERAL_MCQ_FILE = HERE / "general_mcq.jsonl"
GENERAL_TEXT_FILE = HERE / "general_text.jsonl"


def text_field(row: dict[str, Any], key: str) -> str:
    """``row[key]``, checked to be a non-empty string (ValueError naming the field otherwise)."""
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {key!r} must be a non-empty string")
    return value


def _item(row: dict[str, Any]) -> dict[str, Any]:
    item = {"question": text_field(row, "question"), "answer": text_field(row, "answer"), "topic": row.get("topic", "")}
    if "choices" in row:
        choices = row["choices"]
        if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
            raise ValueError("field 'choices' must be a list of at least 2 non-empty strings")
        if item["answer"] not in choices:
            raise ValueError("field 'answer' must be one of 'choices'")
        item["choices"] = choices
    return item


def general_items(path: Path = GENERAL_CANDIDATES_FILE) -> list[dict[str, Any]]:
    """The items of a general-knowledge JSONL, checked."""
    return load_records(path, _item)


def general_qa_probes(path: Path = GENERAL_QA_FILE) -> list[Probe]:
    """Short-answer probes (kind ``general_qa``)."""
    return [Probe(f"general_qa/{i}", "general_qa", it["question"], [it["answer"]])
            for i, it in enumerate(general_items(path))]


def general_mcq_probes(path: Path = GENERAL_MCQ_FILE) -> list[Probe]:
    """Multiple-choice probes (kind ``general_mcq``); a file without choices is a ValueError."""
    items = general_items(path)
    if any("choices" not in it for it in items):
        raise ValueError(f"{path}: every item needs 'choices'")
    return [Probe(f"general_mcq/{i}", "general_mcq", it["question"], [it["answer"]], it["choices"],
                  it["choices"].index(it["answer"])) for i, it in enumerate(items)]


def general_text(path: Path = GENERAL_TEXT_FILE) -> list[str]:
    """The passages of the general text."""
    return load_records(path, lambda row: text_field(row, "text"))
