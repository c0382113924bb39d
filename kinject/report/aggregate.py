"""Turn per-(method, seed) cells into results.json (schema: docs/results-schema.md)."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from typing import Any

from kinject import __version__
from kinject.evaluation.metrics import NORMALISATION, mean, stderr
from kinject.stream import aggregate_stream

SCHEMA_VERSION = 1
_PACKAGES = ("torch", "transformers", "peft", "accelerate")


def versions() -> dict[str, str]:
    out = {"kinject": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """{"qa": {"accuracy": .5}} -> {"qa.accuracy": .5}; counts (``n``) and strings dropped."""
    return {f"{kind}.{k}": float(v) for kind, m in metrics.items() if isinstance(m, dict)
            for k, v in m.items() if k != "n"}


def add_relative_retention(cells: dict[str, dict[int, dict[str, Any]]]) -> None:
    """``retention.relative`` = a method's retention accuracy / base's, per seed (needs base)."""
    base = cells.get("base", {})
    for per_seed in cells.values():
        for seed, cell in per_seed.items():
            ref = base.get(seed, {}).get("metrics", {}).get("retention.accuracy")
            own = cell["metrics"].get("retention.accuracy")
            if ref and own is not None:
                cell["metrics"]["retention.relative"] = own / ref


def _measures(cell: dict[str, Any]) -> dict[str, float]:
    """A cell's metrics and costs in one mapping."""
    return {**cell["metrics"], **cell["cost"]}


def paired_difference(a: dict[Any, dict[str, Any]], b: dict[Any, dict[str, Any]],
                      **extra: Any) -> dict[str, Any] | None:
    """The per-seed difference (a minus b) of each metric and cost both cells have, over the seeds
    both ran ({seed: cell} each), with its mean and standard error (paired by seed, so the world's
    difficulty cancels); None when they share no seed."""
    seeds = sorted(set(a) & set(b), key=int)
    if not seeds:
        return None
    rows = [(_measures(a[s]), _measures(b[s])) for s in seeds]
    keys = sorted(set.intersection(*(set(x) & set(y) for x, y in rows)))
    diffs = {k: [x[k] - y[k] for x, y in rows] for k in keys}
    return {**extra, "seeds": [int(s) for s in seeds],
            "mean": {k: mean(v) for k, v in diffs.items()}, "stderr": {k: stderr(v) for k, v in diffs.items()}}


def paired_comparisons(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For every ``X+mod`` run beside ``X``: :func:`paired_difference` of X+mod against X."""
    out: dict[str, dict[str, Any]] = {}
    for name in methods:
        inner, plus, mod = name.rpartition("+")
        if not plus or inner not in methods:
            continue
        diff = paired_difference(methods[name]["per_seed"], methods[inner]["per_seed"], against=inner, modifier=mod)
        if diff is not None:
            out[name] = diff
    return out


def method_entry(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One method's entry of results.json from its cells {seed: cell}: the seeds, the mean and
    standard error of every metric and cost all its cells have, and the cells; for a stream, its
    matrix, general metrics and costs per update (:func:`~kinject.stream.aggregate_stream`)."""
    seeds = sorted(per_seed)
    measures = [_measures(per_seed[s]) for s in seeds]
    keys = sorted({k for m in measures for k in m})
    series = {k: [m.get(k) for m in measures] for k in keys}
    series = {k: v for k, v in series.items() if all(x is not None for x in v)}
    entry = {"seeds": seeds, "mean": {k: mean(v) for k, v in series.items()},
             "stderr": {k: stderr(v) for k, v in series.items()}, "per_seed": {str(s): per_seed[s] for s in seeds}}
    if all("stream" in per_seed[s] for s in seeds):
        entry["stream"] = aggregate_stream([per_seed[s] for s in seeds])
    return entry


def build_results(cells: dict[str, dict[int, dict[str, Any]]], *, config: dict[str, Any], model: dict[str, str],
                  data: dict[str, Any]) -> dict[str, Any]:
    """Aggregate cells {method: {seed: cell}} into the results document."""
    add_relative_retention(cells)
    methods = {name: method_entry(per_seed) for name, per_seed in cells.items()}
    all_seeds = sorted({s for per_seed in cells.values() for s in per_seed})
    comparisons = paired_comparisons(methods)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(),
        "seeds": all_seeds,
        "model": model,
        "data": data,
        "normalisation": NORMALISATION,
        "methods": methods,
        "comparisons": comparisons,
        "config": config,
    }
