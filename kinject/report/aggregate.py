"""Turn per-(method, seed) cells into results.json (schema: docs/results-schema.md)."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from typing import Any

from kinject import __version__
from kinject.evaluation.metrics import NORMALISATION, mean, stderr

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


def paired_comparisons(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For every ``X+mod`` run beside ``X``: the per-seed difference (X+mod minus X) of each metric
    and cost both have, over the seeds both ran, with its mean and standard error (paired by seed,
    so the world's difficulty cancels)."""
    out: dict[str, dict[str, Any]] = {}
    for name in methods:
        inner, plus, mod = name.rpartition("+")
        if not plus or inner not in methods:
            continue
        seeds = sorted(set(methods[name]["per_seed"]) & set(methods[inner]["per_seed"]), key=int)
        if not seeds:
            continue
        rows = [(_measures(methods[name]["per_seed"][s]), _measures(methods[inner]["per_seed"][s])) for s in seeds]
        keys = sorted(set.intersection(*(set(a) & set(b) for a, b in rows)))
        diffs = {k: [a[k] - b[k] for a, b in rows] for k in keys}
        out[name] = {"against": inner, "modifier": mod, "seeds": [int(s) for s in seeds],
                     "mean": {k: mean(v) for k, v in diffs.items()}, "stderr": {k: stderr(v) for k, v in diffs.items()}}
    return out


def build_results(cells: dict[str, dict[int, dict[str, Any]]], *, config: dict[str, Any], model: dict[str, str],
                  data: dict[str, Any]) -> dict[str, Any]:
    """Aggregate cells {method: {seed: cell}} into the results document."""
    add_relative_retention(cells)
    methods = {}
    for name, per_seed in cells.items():
        seeds = sorted(per_seed)
        measures = [_measures(per_seed[s]) for s in seeds]
        keys = sorted({k for m in measures for k in m})
        series = {k: [m.get(k) for m in measures] for k in keys}
        series = {k: v for k, v in series.items() if all(x is not None for x in v)}
        methods[name] = {
            "seeds": seeds,
            "mean": {k: mean(v) for k, v in series.items()},
            "stderr": {k: stderr(v) for k, v in series.items()},
            "per_seed": {str(s): per_seed[s] for s in seeds},
        }
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
