"""The accuracy-retention frontier of a run, and its one-line recommendation.

Each method is a point (closed-book accuracy on the injected facts, retention of general
knowledge): the headline measure of :func:`kinject.report.charts.headline` and
``retention.accuracy``, means over seeds. The closed-book methods place no context before the
question: not ``rag``, ``oracle`` or any ``X+rag`` / ``X+oracle``. A closed-book point is on the
Pareto set when no other closed-book method is at least as good on both and better on one; the
open-book points are references beside it. The recommendation: among the closed-book methods
that keep retention at least ``report.min_retention``, the most accurate, compared with ``rag``
(or the best open-book method) on accuracy and on cost. Beside ``retention``, the frontier's table
shows the broader retention measures the run has (``general_qa``, ``general_mcq``, ``general_kl``)
and a line on whether they order the methods alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kinject.checks import Check, fraction
from kinject.report.charts import RETENTION, headline

MIN_RETENTION = 0.9
OPEN_BOOK_MODIFIERS = ("rag", "oracle")
# The open-book methods each point's accuracy is also given as a share of, where the run has them.
REFERENCES = ("rag", "oracle")
# The broader retention measures shown beside ``retention.accuracy``: (title, key, sign), the
# sign making higher mean "more kept" (general_kl is a drift from the base: lower keeps more).
BROADER_RETENTION: tuple[tuple[str, str, int], ...] = (
    ("general QA", "general_qa.accuracy", 1), ("general MCQ", "general_mcq.acc", 1),
    ("general KL", "general_kl.kl", -1))


@dataclass
class ReportConfig:
    """The ``report:`` config section (display only: not part of a run's identity).
    ``min_retention``: the ``retention.accuracy`` (on general-knowledge questions the base model
    answered when they were selected) a closed-book method must keep to be recommended."""

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


def closed_book_pareto_set(points: dict[str, tuple[float, float]]) -> list[str]:
    """The Pareto set among the closed-book points: the trade-off a team that keeps no retrieval
    chooses from (``oracle`` reads the gold document and ``rag`` its index, so they are references
    shown beside it, not members of it)."""
    return pareto_set({n: p for n, p in points.items() if not is_open_book(n)})


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
    if key not in entry["mean"]:
        return "-"
    se = entry["stderr"].get(key) if len(entry["seeds"]) > 1 else None
    return f"{entry['mean'][key]:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def frontier_rows(methods: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    """The frontier as a table, most accurate first: each point's accuracy (± standard error over
    seeds) and its share of ``rag``'s and ``oracle``'s where the run has them, retention, the broader
    retention measures the run has, open or closed book, and whether it is on the closed-book
    Pareto set; None without points."""
    found = frontier_points(methods)
    if found is None:
        return None
    title, key, points = found
    on = set(closed_book_pareto_set(points))
    broader = [(t, k) for t, k, _ in BROADER_RETENTION if any(k in methods[n]["mean"] for n in points)]
    refs = [r for r in REFERENCES if r in points]

    def share(n: str, ref: str) -> str:
        return f"{points[n][0] / points[ref][0]:.2f}" if points[ref][0] > 0 else "-"

    header = ["method", "book", title, *(f"of {r}" for r in refs), "retention", *(t for t, _ in broader),
              "Pareto set"]
    rows = [[n, "open" if is_open_book(n) else "closed", _figure(methods[n], key), *(share(n, r) for r in refs),
             _figure(methods[n], RETENTION[1]), *(_figure(methods[n], k) for _, k in broader),
             "yes" if n in on else ""]
            for n in sorted(points, key=lambda n: -points[n][0])]
    return header, rows


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties given their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation of two equal-length lists (nan when either is constant)."""
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx, sy = sum((a - mx) ** 2 for a in rx) ** 0.5, sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy) if sx > 0 and sy > 0 else float("nan")


def agreement_line(methods: dict[str, dict[str, Any]]) -> str | None:
    """Whether the broader retention measures order the frontier's methods as ``retention`` does:
    Spearman's rank correlation over the points holding both (general KL negated); None when no
    broader measure has 3 points."""
    found = frontier_points(methods)
    if found is None:
        return None
    points, parts = found[2], []
    for title, key, sign in BROADER_RETENTION:
        names = [n for n in points if key in methods[n]["mean"]]
        if len(names) >= 3:
            rho = spearman([points[n][1] for n in names], [sign * methods[n]["mean"][key] for n in names])
            parts.append(f"{title} {rho:+.2f} (n = {len(names)})")
    if not parts:
        return None
    return ("retention measures: rank correlation (Spearman) of each broader measure with retention over the "
            "methods, 1 the same order: " + ", ".join(parts) + "; general KL negated, as lower keeps more")


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
        line = (f"recommendation: no closed-book method keeps retention >= {min_retention:g}; the one that keeps "
                f"most is {n} (retention {_figure(methods[n], ret)}, {title} {_figure(methods[n], key)})")
    else:
        n = max(kept, key=lambda m: (kept[m][0], kept[m][1]))
        line = (f"recommendation: among closed-book methods keeping retention >= {min_retention:g}, {n} is the most "
                f"accurate ({title} {_figure(methods[n], key)}, retention {_figure(methods[n], ret)})")
    open_book = {m: p for m, p in points.items() if is_open_book(m)}
    if open_book:
        ref = "rag" if "rag" in open_book else max(open_book, key=lambda m: open_book[m][0])
        share = f"{points[n][0] / points[ref][0]:.2f} of" if points[ref][0] > 0 else "against"
        line += (f"; {share} {ref}'s {title} ({_figure(methods[ref], key)}), after {_cost(methods[n]):.0f} s "
                 f"of preparation (training, generation, teacher, indexing) against {ref}'s "
                 f"{_cost(methods[ref]):.0f} s")
    return line
