"""The accuracy-retention frontier of a run, and its one-line recommendation.

Each method is a point (closed-book accuracy on the injected facts, retention of general
knowledge): the headline measure of :func:`kinject.report.charts.headline` and
``retention.accuracy``, means over seeds. A point is on the Pareto set when no other method is at
least as good on both and better on one. The recommendation: among the closed-book methods (no
context placed before the question: not ``rag``, ``oracle`` or any ``X+rag`` / ``X+oracle``)
that keep retention at least ``report.min_retention``, the most accurate, compared with ``rag``
(or the best open-book method) on accuracy and on cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kinject.checks import Check, fraction
from kinject.report.charts import RETENTION, headline

MIN_RETENTION = 0.9
OPEN_BOOK_MODIFIERS = ("rag", "oracle")


@dataclass
class ReportConfig:
    """The ``report:`` config section (display only: not part of a run's identity).
    ``min_retention``: the retention (share of general-knowledge items the base model answers that
    the injected model still answers) a closed-book method must keep to be recommended."""

    min_retention: float = MIN_RETENTION

    CHECKS: ClassVar[dict[str, Check]] = {"min_retention": fraction}


def is_open_book(name: str) -> bool:
    """Whether a method places a context before each question (retrieved passages or the gold
    document), by its name: ``rag``, ``oracle``, ``X+rag``, ``X+oracle``."""
    return any(part in OPEN_BOOK_MODIFIERS for part in name.split("+"))


def pareto_set(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names whose (accuracy, retention) no other point dominates, by falling accuracy."""
    def dominated(a: tuple[float, float]) -> bool:
        return any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in points.values())
    return sorted((n for n, p in points.items() if not dominated(p)), key=lambda n: -points[n][0])


def frontier_points(methods: dict[str, dict[str, Any]]) -> tuple[str, str, dict[str, tuple[float, float]]] | None:
    """(accuracy title, accuracy key, {method: (accuracy, retention)}) for the methods (base
    aside) with both measures, or None when the run has no such pair."""
    best = headline(methods)
    if best is None:
        return None
    title, key = best
    points = {n: (e["mean"][key], e["mean"][RETENTION[1]]) for n, e in methods.items()
              if n != "base" and key in e["mean"] and RETENTION[1] in e["mean"]}
    return (title, key, points) if points else None


def _figure(entry: dict[str, Any], key: str) -> str:
    se = entry["stderr"].get(key) if len(entry["seeds"]) > 1 else None
    return f"{entry['mean'][key]:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def _cost(entry: dict[str, Any]) -> float:
    """Seconds a method spends before it can answer: training, indexing and the teacher."""
    return sum(entry["mean"].get(k, 0.0) for k in ("train_seconds", "index_seconds", "teacher_seconds",
                                                     "generation_seconds"))


def recommendation(methods: dict[str, dict[str, Any]], min_retention: float = MIN_RETENTION) -> str | None:
    """The one line: the most accurate closed-book method keeping retention >= ``min_retention``,
    and how it compares with ``rag`` (or the most accurate open-book method); None without points."""
    found = frontier_points(methods)
    if found is None:
        return None
    title, key, points = found
    closed = {n: p for n, p in points.items() if not is_open_book(n)}
    kept = {n: p for n, p in closed.items() if p[1] >= min_retention}
    ret = RETENTION[1]
    if not kept:
        if not closed:
            return None
        n = max(closed, key=lambda m: (closed[m][1], closed[m][0]))
        return (f"recommendation: no closed-book method keeps retention >= {min_retention:g}; the one that keeps "
                f"most is {n} (retention {_figure(methods[n], ret)}, {title} {_figure(methods[n], key)})")
    n = max(kept, key=lambda m: (kept[m][0], kept[m][1]))
    line = (f"recommendation: among closed-book methods keeping retention >= {min_retention:g}, {n} is the most "
            f"accurate ({title} {_figure(methods[n], key)}, retention {_figure(methods[n], ret)})")
    open_book = {m: p for m, p in points.items() if is_open_book(m)}
    if open_book:
        ref = "rag" if "rag" in open_book else max(open_book, key=lambda m: open_book[m][0])
        share = points[n][0] / points[ref][0] if points[ref][0] > 0 else float("nan")
        line += (f"; {share:.2f} of {ref}'s {title} ({_figure(methods[ref], key)}), after {_cost(methods[n]):.0f} s "
                 f"of preparation (training, generation, teacher, indexing) against {ref}'s "
                 f"{_cost(methods[ref]):.0f} s")
    return line
