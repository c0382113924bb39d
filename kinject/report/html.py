"""report.html: one self-contained page per run or sweep (tables, charts as inline SVG images).

A run's page: what ran (model, corpus, seeds, precision, versions), the comparison table (the
best mean of each accuracy column in bold), the paired differences of each ``X+mod`` against
``X``, the trade-off charts, a bar chart per measure, and (several seeds) each cell's figures.

The page needs no network and no JavaScript: CSS is inline, and every chart is an ``<img>`` whose
source is an SVG ``data:`` URI rendered by :mod:`kinject.report.charts`. Tables are the same rows
report.md and the terminal print (:mod:`kinject.report.render`).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from kinject.report import charts
from kinject.report.frontier import agreement_line, closed_book_pareto_set, frontier_points, frontier_rows
from kinject.report.render import (
    STREAM_COLUMNS,
    comparison_rows,
    corpus_line,
    metric_rows,
    per_seed_rows,
    precision_line,
    recommendation_line,
    seeds_line,
    sweep_rows,
    table_rows,
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
ul.meta { padding-left: 1.2em; font-size: .92em; color: #444; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: .84em; margin: .6em 0; }
th, td { padding: .3em .5em; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #888; white-space: normal; vertical-align: bottom; }
td.best { font-weight: 600; }
td span.se { display: block; font-size: .8em; color: #666; font-weight: normal; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: .85em; color: #555; max-width: 32em; }
p.note { font-size: .88em; color: #555; max-width: 60em; }
p.advice { font-weight: 600; max-width: 60em; }
"""

# Columns whose best (largest) mean is set in bold: accuracies on the injected facts and retention,
# among the methods that inject (``base`` is the reference, and keeps all its general knowledge).
BEST_IS_HIGHEST = {"MCQ acc", "MCQ acc_norm", "QA acc", "QA EM", "QA F1", "cloze acc", "retention"}

DEFINITIONS = (
    "Accuracy (QA, cloze, retention) is token recall of the gold answer > 0.7; MCQ acc is the argmax of summed "
    "log-likelihood over the choices, acc_norm of log-likelihood per byte. Retention: general-knowledge "
    "questions the base model answers. recall@k: share of QA questions whose retrieved passages include the "
    "one holding the gold fact (retrieval methods only). Per-probe prompts, predictions and scores are in "
    "<code>samples/&lt;method&gt;-seed&lt;seed&gt;.jsonl</code>; every figure is in <code>results.json</code>."
)


def svg_data_uri(fig: Any) -> str:
    """The figure as an SVG ``data:`` URI (the figure is closed)."""
    plt = charts.pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig: Any, alt: str, caption: str) -> str:
    """``<figure class="chart">`` holding one chart image and its caption."""
    return (f'<figure class="chart"><img src="{svg_data_uri(fig)}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _best_columns(header: list[str], rows: list[list[str]]) -> dict[int, float]:
    """Column index -> its largest mean, for the columns in :data:`BEST_IS_HIGHEST`."""
    best = {}
    rows = [r for r in rows if r[0] != "base"]
    for i, title in enumerate(header):
        if title in BEST_IS_HIGHEST:
            means = [_mean_of(r[i]) for r in rows]
            known = [m for m in means if m is not None]
            if len(known) > 1:
                best[i] = max(known)
    return best


def _mean_of(text: str) -> float | None:
    """The mean in a table cell ("0.594 ± 0.033" -> 0.594; "-" -> None)."""
    try:
        return float(text.split(" ± ")[0])
    except ValueError:
        return None


def table_html(header: list[str], rows: list[list[str]], mark_best: bool = True) -> str:
    """An HTML table of the given rows; a standard error under its mean, the best mean of each accuracy
    column in bold."""
    best = _best_columns(header, rows) if mark_best else {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ' class="best"' if i in best and r[0] != "base" and _mean_of(c) == best[i] else ""
            mean, plus, se = c.partition(" ± ")
            shown = html.escape(mean) + (f'<span class="se">± {html.escape(se)}</span>' if plus else "")
            cells.append(f"<td{cls}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def trade_off_charts(methods: dict[str, dict[str, Any]]) -> list[str]:
    """Closed-book accuracy against retention and against training time, as ``<figure>`` elements."""
    best = charts.headline(methods)
    if best is None:
        return []
    out = []
    found = frontier_points(methods)
    fig = charts.scatter_chart(methods, charts.RETENTION, best, x_unit_interval=True,
                               frontier=closed_book_pareto_set(found[2]) if found else None)
    if fig is not None:
        out.append(figure_html(fig, f"scatter: {best[0]} against retention",
                               f"{best[0]} on the injected facts against general knowledge kept: the best methods "
                               "sit top right; the ringed ones, joined by the dashed line, are the closed-book Pareto "
                               "set (no other closed-book method is as good on both)."))
    fig = charts.scatter_chart(methods, charts.COST, best, x_unit_interval=False)
    if fig is not None:
        out.append(figure_html(fig, f"scatter: {best[0]} against training time",
                               f"{best[0]} against training time (seconds in the trainer; retrieval trains "
                               "nothing): the best methods sit top left."))
    return out


def measure_charts(methods: dict[str, dict[str, Any]]) -> list[str]:
    """A bar chart per measure (one bar per method), as ``<figure>`` elements."""
    out = []
    for title, key in charts.MEASURES:
        fig = charts.bar_chart(methods, title, key)
        if fig is not None:
            out.append(figure_html(fig, f"bar chart: {title} per method", f"{title} per method (mean over its seeds)."))
    return out


def stream_html(results: dict[str, Any]) -> list[str]:
    """The stream section (none without a stream): the summary table, the accuracy of each
    update's probes across the updates, the cumulative cost."""
    methods = results["methods"]
    streams = [([name], e) for name, e in methods.items() if "stream" in e]
    if not streams:
        return []
    titles, rows = metric_rows(streams, STREAM_COLUMNS)
    figures = []
    best = charts.headline(methods)
    fig = charts.stream_accuracy_chart(methods, *best) if best else None
    if fig is not None:
        figures.append(figure_html(fig, f"line charts: {best[0]} on each update's probes",
                                   f"{best[0]} on the probes of each update after every later update: a falling "
                                   "line is knowledge the later updates made the model forget."))
    fig = charts.stream_cost_chart(methods)
    if fig is not None:
        figures.append(figure_html(fig, "line chart: cumulative preparation seconds per update",
                                   "What keeping up cost: training, generation, teacher and indexing seconds summed "
                                   "over the updates so far."))
    return ["<h2>A stream of updates</h2>", table_html(["method", *titles], rows, mark_best=False),
            '<div class="charts">', *figures, "</div>"]


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _li(text: str) -> str:
    return f"<li>{html.escape(text)}</li>"


def run_html(results: dict[str, Any]) -> str:
    """report.html for a run (results.json): what ran, the table, paired differences, the charts."""
    model = results["model"]
    body = [
        "<h1>kinject report</h1>",
        '<ul class="meta">',
        _li(f"model: {model['name']} ({model['path']})"), _li(corpus_line(results["data"])),
        f'<li class="seeds">{html.escape(seeds_line(results))}</li>',
        _li(precision_line(results)),
        _li("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items())),
        _li(f"created: {results['created']}"),
        "</ul>",
        "<h2>Results</h2>",
        table_html(*table_rows(results)),
        *([f'<p class="advice">{html.escape(advice)}</p>'] if (advice := recommendation_line(results)) else []),
        f'<p class="note">{DEFINITIONS}</p>',
    ]
    header, rows = comparison_rows(results)
    if rows:
        body += ["<h2>With and without each modifier</h2>",
                 '<p class="note">Each <code>X+mod</code> against <code>X</code> on the same seeds: the mean of the '
                 "per-seed differences ± their standard error.</p>",
                 table_html(header, rows, mark_best=False)]
    trade_offs = trade_off_charts(results["methods"])
    if trade_offs:
        body += ["<h2>Trade-offs</h2>", '<div class="charts">', *trade_offs, "</div>"]
    frontier = frontier_rows(results["methods"])
    if frontier:
        agree = agreement_line(results["methods"])
        body += ["<h2>Accuracy against retention</h2>", table_html(*frontier, mark_best=False),
                 *([f'<p class="note">{html.escape(agree)}</p>'] if agree else [])]
    body += ["<h2>Each measure</h2>", '<div class="charts">', *measure_charts(results["methods"]), "</div>"]
    body += stream_html(results)
    if len(results["seeds"]) > 1:
        body += ["<details><summary>Per seed</summary>", table_html(*per_seed_rows(results), mark_best=False),
                 "</details>"]
    return _page("kinject report", body)


def sweep_html(summary: dict[str, Any]) -> str:
    """report.html for a sweep (sweep.json): the table, the curves, and a link to each point's report."""
    keys = ", ".join(a["key"] for a in summary["axes"])
    body = [
        "<h1>kinject sweep report</h1>",
        '<ul class="meta">',
        _li(f"swept: {keys} (x axis: {summary['axes'][0]['key']})"),
        f'<li class="seeds">{html.escape(seeds_line(summary))}</li>',
        _li(f"created: {summary['created']}"),
        "</ul>",
        "<h2>Results per point</h2>",
        table_html(*sweep_rows(summary), mark_best=False),
        "<h2>Charts</h2>", '<div class="charts">',
    ]
    fig = charts.sweep_chart(summary)
    if fig is not None:
        body.append(figure_html(fig, f"each measure against {summary['axes'][0]['key']}",
                                "Each measure against the swept value, one line per method."))
    body += ["</div>", "<h2>Points</h2>", "<ul>"]
    body += [f'<li><a href="{html.escape(p["dir"])}/report.html">{html.escape(p["label"])}</a></li>'
             for p in summary["points"]]
    body.append("</ul>")
    return _page("kinject sweep report", body)
