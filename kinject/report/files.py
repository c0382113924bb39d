"""The report files of a run or sweep directory, written from its results (never from the cells' models).

``kinject bench`` writes them after every run; ``kinject report DIR`` writes them again from a
directory's results.json or sweep.json, so a report can be re-rendered without recomputing a cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinject.artifacts import atomic_file
from kinject.data.jsonl import atomic_write_text, read_json
from kinject.errors import UserError
from kinject.report import charts
from kinject.report.html import run_html, sweep_html
from kinject.report.render import report_markdown


def write_run_reports(out: Path, results: dict[str, Any]) -> list[Path]:
    """report.md and report.html of a run directory; returns their paths."""
    paths = [out / "report.md", out / "report.html"]
    atomic_write_text(paths[0], report_markdown(results))
    atomic_write_text(paths[1], run_html(results))
    return paths


def write_sweep_reports(out: Path, summary: dict[str, Any]) -> list[Path]:
    """sweep.png and report.html of a sweep directory; returns the paths written."""
    written = []
    fig = charts.sweep_chart(summary)
    if fig is not None:
        with atomic_file(out / "sweep.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        charts.pyplot().close(fig)
        written.append(out / "sweep.png")
    atomic_write_text(out / "report.html", sweep_html(summary))
    return [*written, out / "report.html"]


def _read_json(path: Path) -> dict[str, Any]:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a JSON object")
    return doc


def _require(path: Path, doc: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in doc]
    if missing:
        raise UserError(f"{path}: missing key {missing[0]!r} (not a kinject results file?)")


RESULTS_KEYS = ("methods", "seeds", "data", "model", "versions", "normalisation")


def read_results(directory: Path) -> dict[str, Any]:
    """The results.json of a finished run directory, checked to be one."""
    path = directory / "results.json"
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    if not path.is_file():
        raise UserError(f"{directory}: holds no results.json (not a finished kinject run)")
    results = _read_json(path)
    _require(path, results, RESULTS_KEYS)
    return results


def rerender(directory: Path) -> list[Path]:
    """Write the reports of a run directory (from results.json) or a sweep directory (from
    sweep.json, and each point's run directory from its own results.json)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    sweep_file, results_file = directory / "sweep.json", directory / "results.json"
    if sweep_file.is_file():
        summary = _read_json(sweep_file)
        _require(sweep_file, summary, ("axes", "points", "seeds", "normalisation", "created"))
        written = []
        for point in summary["points"]:
            if (directory / point["dir"] / "results.json").is_file():
                written += rerender(directory / point["dir"])
        return [*written, *write_sweep_reports(directory, summary)]
    if results_file.is_file():
        return write_run_reports(directory, read_results(directory))
    raise UserError(f"{directory}: holds no results.json or sweep.json (not a finished kinject run or sweep)")
