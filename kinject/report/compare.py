"""Finished runs side by side (``kinject compare``): their cells merged by seed, and the paired
differences between any two of the methods they hold.

A comparison across runs is fair only on the same worlds, so every seed two runs share must have
been run on the same corpus (``data.hash`` of results.json). A method that runs hold on disjoint
seeds (``ft`` in a run of seeds 1000-1001 and in one of seeds 1002-1003) merges under its name. A
method name that two runs hold for the same seed (``lapael`` in a run with the learned mask and in
one with ``lapael.mask=oracle``) is labelled by its run directory's name, ``<dir name>/<method>``,
in every run, so that per-seed directories (``s0/main``, ``s1/main``) merge into one
``main/lapael``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinject.errors import UserError
from kinject.evaluation.metrics import NORMALISATION
from kinject.report.aggregate import method_entry, paired_difference
from kinject.report.files import read_results
from kinject.report.render import DIFF_COLUMNS, fixed_width, markdown_table, metric_rows, precision_line, seeds_line


def merge_runs(dirs: list[Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """Cells {label: {seed: cell}} of the runs in ``dirs`` (each a finished run directory)."""
    runs = [(d, read_results(d)) for d in dirs]
    hashes: dict[str, tuple[Path, str]] = {}
    holders: dict[str, set[str]] = {}
    seeds_held: dict[str, list[str]] = {}  # every (run, seed) holding the method, a seed once per run
    for d, results in runs:
        for seed, digest in results["data"]["hash"].items():
            first = hashes.setdefault(seed, (d, digest))
            if first[1] != digest:
                raise UserError(f"{first[0]} and {d} ran seed {seed} on different corpora "
                                f"(data hash {first[1]} against {digest}): they cannot be compared")
        for name, entry in results["methods"].items():
            holders.setdefault(name, set()).add(d.name)
            seeds_held.setdefault(name, []).extend(entry["per_seed"])
    shared = {name for name, seeds in seeds_held.items() if len(set(seeds)) < len(seeds)}
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    for d, results in runs:
        for name, entry in results["methods"].items():
            label = f"{d.name}/{name}" if name in shared and len(holders[name]) > 1 else name
            for seed, cell in entry["per_seed"].items():
                if int(seed) in cells.setdefault(label, {}):
                    raise UserError(f"{d}: {label} seed {seed} is held by another of the runs too")
                cells[label][int(seed)] = cell
    return cells


def compare_runs(dirs: list[Path], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A results-like document of the merged runs: ``methods`` (as in results.json), ``seeds`` and
    ``comparisons`` {"A vs B": paired difference A minus B} for each requested pair."""
    if not dirs:
        raise UserError("compare: name at least one run directory")
    cells = merge_runs(dirs)
    comparisons = {}
    for a, b in pairs:
        for label in (a, b):
            if label not in cells:
                raise UserError(f"compare: --pair {a},{b}: no method {label!r} in these runs "
                                f"(they hold: {', '.join(sorted(cells))})")
        diff = paired_difference(cells[a], cells[b], against=b)
        if diff is None:
            raise UserError(f"compare: --pair {a},{b}: the two share no seed")
        comparisons[f"{a} vs {b}"] = diff
    return {"methods": {label: method_entry(per_seed) for label, per_seed in sorted(cells.items())},
            "seeds": sorted({s for per_seed in cells.values() for s in per_seed}),
            "normalisation": NORMALISATION, "comparisons": comparisons}


def format_comparison(doc: dict[str, Any], markdown: bool = False) -> str:
    """The merged table, the seeds and precision lines, then each pair's paired differences."""
    render = markdown_table if markdown else lambda h, r: "\n".join(fixed_width(h, r))
    titles, rows = metric_rows([([name], e) for name, e in doc["methods"].items()])
    out = [render(["method", *titles], rows), "", seeds_line(doc), precision_line(doc)]
    if doc["comparisons"]:
        titles, rows = metric_rows([([name], e) for name, e in doc["comparisons"].items()], DIFF_COLUMNS)
        out += ["", render(["paired by seed", *titles], rows)]
    return "\n".join(out)
