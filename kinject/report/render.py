"""The comparison tables (terminal and Markdown: a run's, a sweep's, the paired differences) and report.md."""

from __future__ import annotations

import math
from typing import Any

import yaml

from kinject.report.frontier import MIN_RETENTION, agreement_line, frontier_rows, recommendation

# (column title, metric key, format): a column is shown when any method has the metric.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("MCQ acc", "mcq.acc", "{:.3f}"),
    ("MCQ acc_norm", "mcq.acc_norm", "{:.3f}"),
    ("QA acc", "qa.accuracy", "{:.3f}"),
    ("QA EM", "qa.em", "{:.3f}"),
    ("QA F1", "qa.f1", "{:.3f}"),
    ("cloze acc", "cloze.accuracy", "{:.3f}"),
    ("retention", "retention.accuracy", "{:.3f}"),
    ("general QA", "general_qa.accuracy", "{:.3f}"),
    ("general MCQ", "general_mcq.acc", "{:.3f}"),
    ("general KL", "general_kl.kl", "{:.3f}"),
    ("recall@k", "qa.retrieval_recall", "{:.3f}"),
    ("train tokens", "train_tokens", "{:.0f}"),
    ("train s", "train_seconds", "{:.0f}"),
    ("wall s", "wall_seconds", "{:.0f}"),
)


def _cell(entry: dict[str, Any], key: str, fmt: str) -> str:
    m = entry["mean"].get(key)
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    text = fmt.format(m)
    if len(entry["seeds"]) > 1 and key in entry["stderr"]:
        text += " ± " + fmt.format(entry["stderr"][key]).lstrip("+")  # a signed format signs the mean only
    return text


def metric_rows(entries: list[tuple[list[str], dict[str, Any]]],
                columns: tuple[tuple[str, str, str], ...] = COLUMNS) -> tuple[list[str], list[list[str]]]:
    """Column titles, and a row per (labels, entry): the labels, then the columns any entry has a figure for."""
    cols = [c for c in columns if any(c[1] in e["mean"] for _, e in entries)]
    rows = [[*labels, *[_cell(e, key, fmt) for _, key, fmt in cols]] for labels, e in entries]
    return [c[0] for c in cols], rows


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    titles, rows = metric_rows([([name], e) for name, e in results["methods"].items()])
    return ["method", *titles], rows


def per_seed_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A row per (method, seed): that cell's own figures, the main table's columns."""
    entries = [([name, seed], {"seeds": [seed], "mean": {**cell["metrics"], **cell["cost"]}, "stderr": {}})
               for name, e in results["methods"].items() for seed, cell in e["per_seed"].items()]
    titles, rows = metric_rows(entries)
    return ["method", "seed", *titles], rows


def seeds_line(results: dict[str, Any]) -> str:
    seeds = results["seeds"]
    spread = "mean ± standard error over seeds" if len(seeds) > 1 else "one seed, no error bar"
    return f"seeds: {', '.join(map(str, seeds))} ({spread}); normalisation: {results['normalisation']}"


def precision_line(results: dict[str, Any]) -> str:
    """The weights' dtype and the arithmetic the cells trained and evaluated in (``auto`` resolves
    by machine), with the cells named where they differ; "unrecorded" for cells written before
    kinject recorded it."""
    seen: dict[str, dict[str, list[str]]] = {"weights": {}, "train": {}, "eval": {}}
    for name, entry in results["methods"].items():
        for seed, cell in entry["per_seed"].items():
            trained = cell.get("cost", {}).get("train_steps")
            recorded = {"weights": "unrecorded", "train": "unrecorded" if trained else None, "eval": "unrecorded",
                        **cell.get("precision", {})}
            for part, groups in seen.items():
                if recorded[part] is not None:
                    groups.setdefault(recorded[part], []).append(f"{name}-seed{seed}")

    def describe(part: str, groups: dict[str, list[str]]) -> str:
        if len(groups) <= 1:
            return f"{part} {next(iter(groups), '-')}"
        return f"{part} mixed: " + "; ".join(f"{kind} ({', '.join(cells)})" for kind, cells in groups.items())

    return "precision: " + ", ".join(describe(part, groups) for part, groups in seen.items())


def fixed_width(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def recommendation_line(results: dict[str, Any]) -> str | None:
    """The frontier's recommendation (:mod:`kinject.report.frontier`) at the run's ``report.min_retention``."""
    threshold = (results.get("config") or {}).get("report", {}).get("min_retention", MIN_RETENTION)
    return recommendation(results["methods"], threshold)


def frontier_lines(results: dict[str, Any]) -> list[str]:
    """The terminal's frontier: its fixed-width table (:func:`kinject.report.frontier.frontier_rows`),
    then the line on whether the retention measures agree; empty without points."""
    found = frontier_rows(results["methods"])
    agree = agreement_line(results["methods"])
    return [] if found is None else [*fixed_width(*found), *([agree] if agree else [])]


def format_table(results: dict[str, Any]) -> str:
    """A fixed-width table for the terminal, the seeds and precision lines, the recommendation,
    the accuracy-retention frontier, then any paired comparisons."""
    out = [*fixed_width(*table_rows(results)), seeds_line(results), precision_line(results)]
    advice = recommendation_line(results)
    if advice:
        out.append(advice)
    frontier = frontier_lines(results)
    if frontier:
        out += ["", "accuracy against retention (the frontier):", *frontier]
    header, rows = comparison_rows(results)
    if rows:
        out += ["", *fixed_width(header, rows)]
    streams = [([name], e) for name, e in results["methods"].items() if "stream" in e]
    if streams:
        titles, rows = metric_rows(streams, STREAM_COLUMNS)
        out += ["", *fixed_width(["stream", *titles], rows)]
    return "\n".join(out)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


DIFF_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Δ MCQ acc", "mcq.acc", "{:+.3f}"), ("Δ QA acc", "qa.accuracy", "{:+.3f}"), ("Δ QA F1", "qa.f1", "{:+.3f}"),
    ("Δ cloze acc", "cloze.accuracy", "{:+.3f}"), ("Δ retention", "retention.accuracy", "{:+.3f}"),
    ("Δ train s", "train_seconds", "{:+.0f}"),
)


def comparison_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each ``X+mod`` against ``X``: mean per-seed difference ± its standard error."""
    comps = results.get("comparisons", {})
    titles, rows = metric_rows([([f"{name} vs {e['against']}"], e) for name, e in comps.items()], DIFF_COLUMNS)
    return ["paired by seed", *titles], rows


def corpus_line(data: dict[str, Any]) -> str:
    """``corpus: NAME (N documents, M probes[, G of them written by an LLM])`` from results.json's data."""
    generated = data.get("generated_probes")
    return (f"corpus: {data['name']} ({data['documents']} documents, {data['probes']} probes"
            + (f", {generated} of them written by an LLM" if generated else "") + ")")


def report_markdown(results: dict[str, Any]) -> str:
    """report.md: what was run, the table, and where the per-probe records are."""
    data, model = results["data"], results["model"]
    lines = [
        "# kinject report",
        "",
        f"- model: `{model['name']}` (`{model['path']}`)",
        f"- {corpus_line(data)}; data hash per seed: {', '.join(f'{s}: {h}' for s, h in data['hash'].items())}",
        f"- {seeds_line(results)}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}",
        f"- {precision_line(results)}",
        "",
        markdown_table(*table_rows(results)),
        "",
        *([f"**{advice}**", ""] if (advice := recommendation_line(results)) else []),
        "Accuracy (QA, cloze, retention) is token recall of the gold answer > 0.7; MCQ acc is the argmax of summed",
        "log-likelihood over the choices, acc_norm of log-likelihood per byte. Per-probe prompts, predictions and",
        "scores are in `samples/<method>-seed<seed>.jsonl`; every figure is in `results.json`. recall@k: share of QA",
        "questions whose retrieved passages include the one holding the gold fact (retrieval methods only).",
        "",
    ]
    frontier = frontier_rows(results["methods"])
    if frontier:
        agree = agreement_line(results["methods"])
        lines += ["## Accuracy against retention", "",
                  "One point per method (mean ± standard error over seeds), most accurate first. Closed book: nothing",
                  "placed before the question; the Pareto set and the recommendation are among these (no other",
                  "closed-book method is at least as good on both the accuracy and `retention`). `of rag`,",
                  "`of oracle`: the accuracy as a share of theirs.", "",
                  markdown_table(*frontier), "", *([agree, ""] if agree else [])]
    header, rows = comparison_rows(results)
    if rows:
        lines += ["## With and without each modifier", "",
                  "Each `X+mod` against `X` on the same seeds: the mean of the per-seed differences ± their standard",
                  "error (the world's difficulty cancels in a difference).", "",
                  markdown_table(header, rows), ""]
    lines += stream_markdown(results)
    return "\n".join(lines)


STREAM_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("final MCQ acc", "stream.final.mcq.acc", "{:.3f}"), ("forgetting MCQ", "stream.forgetting.mcq.acc", "{:+.3f}"),
    ("final QA acc", "stream.final.qa.accuracy", "{:.3f}"),
    ("forgetting QA", "stream.forgetting.qa.accuracy", "{:+.3f}"), ("retention", "retention.accuracy", "{:.3f}"),
    ("train s (sum)", "stream.cumulative_train_seconds", "{:.0f}"),
    ("teacher s (sum)", "stream.cumulative_teacher_seconds", "{:.0f}"),
    ("generation s (sum)", "stream.cumulative_generation_seconds", "{:.0f}"),
    ("index s (sum)", "stream.cumulative_index_seconds", "{:.1f}"),
    ("one-time s", "stream.one_time_seconds", "{:.0f}"),
    ("total s", "stream.total_preparation_seconds", "{:.0f}"),
)


def stream_markdown(results: dict[str, Any]) -> list[str]:
    """report.md's stream section (empty without a stream): the summary per method, then each
    method's accuracy matrix (after update i, on update j's probes) on MCQ acc (QA acc without MCQ)."""
    streams = {name: e for name, e in results["methods"].items() if "stream" in e}
    if not streams:
        return []
    titles, rows = metric_rows([([name], e) for name, e in streams.items()], STREAM_COLUMNS)
    first = next(iter(streams.values()))["stream"]
    sizes = ", ".join(f"{u['documents']} documents / {u['probes']} probes" for u in first["updates"])
    lines = ["## A stream of updates", "",
             f"The corpus in {len(first['updates'])} updates ({first['split']}: {sizes}), injected one after another. "
             "final: the mean over updates of the last model's accuracy on each; forgetting: the mean over all but "
             "the last update of its best accuracy after any earlier update minus the final one.", "",
             markdown_table(["method", *titles], rows), ""]
    for name, entry in streams.items():
        mean_m, err_m = entry["stream"]["matrix_mean"], entry["stream"]["matrix_stderr"]
        key = "mcq.acc" if "mcq.acc" in mean_m[0][0] else "qa.accuracy"
        if key not in mean_m[0][0]:
            continue
        several = len(entry["seeds"]) > 1
        body = [[f"after {i + 1}", *[f"{m[key]:.3f}" + (f" ± {e[key]:.3f}" if several else "")
                                     for m, e in zip(row, erow)], *[""] * (len(mean_m) - len(row))]
                for i, (row, erow) in enumerate(zip(mean_m, err_m))]
        lines += [f"`{name}`, {key}:", "", markdown_table(["", *[f"update {j + 1}" for j in range(len(mean_m))]],
                                                          body), ""]
    return lines


def show_setting(value: Any) -> str:
    """A swept setting as a short one-line string: 0.5, [qa, mcq], null."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def sweep_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A sweep's table (sweep.json): one row per (point, method), the swept settings first."""
    keys = [a["key"] for a in summary["axes"]]
    entries = [([*(show_setting(p["settings"][k]) for k in keys), name], e)
               for p in summary["points"] for name, e in p["methods"].items()]
    titles, rows = metric_rows(entries)
    return [*keys, "method", *titles], rows


def sweep_table(summary: dict[str, Any]) -> str:
    """The sweep's table, fixed-width, and its seeds line."""
    return "\n".join([*fixed_width(*sweep_rows(summary)), seeds_line(summary)])
