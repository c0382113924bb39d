"""Retention probes: general-knowledge questions the default model answers before injection.

``retention.jsonl`` is the subset of ``retention_candidates.jsonl`` that the embedded
SmolLM2-135M-Instruct answers correctly under kinject's closed-book QA evaluation; it is made
by ``python -m kinject.data.builtin.select_retention`` (recorded in the README).
"""

from __future__ import annotations

from pathlib import Path

from kinject.data.builtin.general import text_field
from kinject.data.jsonl import load_records
from kinject.data.schema import Probe

HERE = Path(__file__).parent
RETENTION_FILE = HERE / "retention.jsonl"
CANDIDATES_FILE = HERE / "retention_candidates.jsonl"
# The few-shot header for retention probes: fixed, general, and not among the probes.
RETENTION_FEWSHOT: list[tuple[str, str]] = [
    ("What is the capital of Peru?", "Lima"),
    ("Who wrote The Odyssey?", "Homer"),
    ("How many sides does a triangle have?", "3"),
    ("What is the chemical symbol for gold?", "Au"),
    ("Which planet is closest to the Sun?", "Mercury"),
]


def retention_probes(path: Path = RETENTION_FILE) -> list[Probe]:
    """Load retention probes (kind ``retention``) from a JSONL of {question, answer}."""
    return [Probe(f"retention/{i}", "retention", q, [a]) for i, (q, a) in enumerate(load_records(path, _retention_row))]


def _retention_row(row: dict) -> tuple[str, str]:
    return text_field(row, "question"), text_field(row, "answer")
