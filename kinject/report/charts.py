"""The report's charts as matplotlib figures (Agg): bars per measure, trade-off scatters, sweep curves.

Every function takes the ``methods`` mapping of results.json (``{name: {"seeds", "mean",
"stderr"}}``) or a sweep.json summary and returns a ``Figure`` (or None when there is nothing to
draw); the caller saves it (PNG for sweep.png, SVG inside report.html). Error bars are one
standard error over seeds, and only for an entry with more than one seed: a chart says which.
"""

from __future__ import annotations

from typing import Any

from kinject.stream import PREPARATION_COSTS

# (title, metric key): the measures drawn, in this order, when any entry has them. All lie in [0, 1].
MEASURES: tuple[tuple[str, str], ...] = (
    ("MCQ accuracy", "mcq.acc"), ("QA accuracy", "qa.accuracy"), ("QA F1", "qa.f1"),
    ("cloze accuracy", "cloze.accuracy"), ("retention", "retention.accuracy"),
)
# The closed-book measure a trade-off chart plots: the first of these that any method has.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("MCQ accuracy", "mcq.acc"), ("QA accuracy", "qa.accuracy"), ("cloze accuracy", "cloze.accuracy"),
)
RETENTION = ("retention (general knowledge kept)", "retention.accuracy")
COST = ("training time (s)", "train_seconds")
# Distinct markers, so that lines or points lying on one another stay visible.
MARKERS = "osD^vP*Xh<>p"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spread(entry: dict[str, Any], key: str) -> float | None:
    """The standard error to draw for ``key``, or None (one seed, or none recorded)."""
    if len(entry.get("seeds", [])) < 2:
        return None
    return entry["stderr"].get(key)


def error_bars(errs: list[float | None]) -> list[float] | None:
    """matplotlib's ``yerr`` for points whose standard errors are ``errs``: None draws no bars at all
    (every point from one seed), else 0 for a point without one."""
    return [e or 0.0 for e in errs] if any(e is not None for e in errs) else None


def is_numeric(values: list[Any]) -> bool:
    """Every value a number (bools are not)."""
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def error_note(entries: list[dict[str, Any]]) -> str:
    """What the error bars of a chart over ``entries`` are, in a few words."""
    counts = {len(e.get("seeds", [])) for e in entries}
    if counts <= {0, 1}:
        return "one seed: no error bars"
    if 1 in counts:
        return "error bars: standard error over seeds (none for a method run on one seed)"
    return "error bars: standard error over seeds"


def method_styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """A (colour, marker) per method, fixed by its position so that every chart agrees."""
    return {m: (f"C{i % 10}", MARKERS[i % len(MARKERS)]) for i, m in enumerate(names)}


def headline(methods: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """The closed-book measure trade-off charts plot: (title, key), or None."""
    return next(((t, k) for t, k in HEADLINE if any(k in e["mean"] for e in methods.values())), None)


def bar_chart(methods: dict[str, dict[str, Any]], title: str, key: str) -> Any | None:
    """One bar per method that has ``key``, y in [0, 1], standard-error bars where there are seeds."""
    plt = pyplot()
    styles = method_styles(list(methods))
    names = [m for m, e in methods.items() if key in e["mean"]]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(3.0, 0.55 * len(names) + 1.2), 3.2))
    errs = [spread(methods[m], key) for m in names]
    heights = [methods[m]["mean"][key] for m in names]
    ax.bar(range(len(names)), heights, yerr=error_bars(errs), capsize=4, color=[styles[m][0] for m in names])
    for i, (h, e) in enumerate(zip(heights, errs)):
        ax.text(i, min(h + (e or 0.0), 1.0) + 0.015, f"{h:.2f}", ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0, 1.08)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_title(f"{title}\n{error_note([methods[m] for m in names])}", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def scatter_chart(methods: dict[str, dict[str, Any]], x: tuple[str, str], y: tuple[str, str],
                  x_unit_interval: bool, frontier: list[str] | None = None) -> Any | None:
    """One point per method with both measures, its standard errors as a cross; each point labelled
    with its method's name (no legend to look up).

    ``x_unit_interval``: the x measure lies in [0, 1] (retention) rather than being a cost.
    ``frontier``: methods of the Pareto set, ringed and joined by a dashed line.
    """
    plt = pyplot()
    styles = method_styles(list(methods))
    (x_title, x_key), (y_title, y_key) = x, y
    names = [m for m, e in methods.items() if x_key in e["mean"] and y_key in e["mean"]]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for m in names:
        e = methods[m]
        colour, marker = styles[m]
        xs, ys = e["mean"][x_key], e["mean"][y_key]
        ax.errorbar([xs], [ys], xerr=spread(e, x_key), yerr=spread(e, y_key), fmt=marker, color=colour,
                    markersize=7, capsize=3, label=m, clip_on=False)
        ax.annotate(m, (xs, ys), textcoords="offset points", xytext=(6, 5), fontsize="x-small", color=colour)
    on = sorted((m for m in frontier or [] if m in names), key=lambda m: methods[m]["mean"][x_key])
    if on:
        fx, fy = [methods[m]["mean"][x_key] for m in on], [methods[m]["mean"][y_key] for m in on]
        ax.plot(fx, fy, "--", color="0.4", linewidth=1, label="Pareto set", zorder=0)
        ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="0.2", linewidths=1, zorder=3)
    ax.set_ylim(0, 1.05)
    if x_unit_interval:
        ax.set_xlim(0, 1.05)
    else:
        ax.set_xlim(left=0)
        ax.margins(x=0.12)
    ax.set_xlabel(x_title)
    ax.set_ylabel(y_title)
    ax.grid(alpha=0.3)
    ringed = "; ringed: the Pareto set" if on else ""
    ax.set_title(f"{y_title} against {x_title}\n{error_note([methods[m] for m in names])}{ringed}", fontsize="small")
    fig.tight_layout()
    return fig


def count_scale(values: list[Any]) -> str | None:
    """The x scale a sweep axis needs: "symlog" for counts from 0 spanning a decade (0, 1, 2, 5, 10),
    "log" for positive values spanning a decade (lr 1e-5..1e-3), None for linear (or non-numeric)."""
    if not values or not is_numeric(values):
        return None
    positive = [v for v in values if v > 0]
    if not positive or max(positive) < 10 * min(positive) or any(v < 0 for v in values):
        return None
    if len(positive) == len(values):
        return "log"
    return "symlog" if all(isinstance(v, int) for v in values) else None


def sweep_chart(summary: dict[str, Any]) -> Any | None:
    """One panel per measure, one line per method, x = the first swept key's values (sweep.png)."""
    plt = pyplot()
    axis = summary["axes"][0]
    values = list(axis["values"])
    scale = count_scale(values)
    xs = values if is_numeric(values) else list(range(len(values)))
    points = summary["points"]
    panels = [(t, k) for t, k in MEASURES if any(k in e["mean"] for p in points for e in p["methods"].values())]
    if not panels:
        return None
    methods = list(dict.fromkeys(m for p in points for m in p["methods"]))
    styles = method_styles(methods)
    fig, axs = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (title, key) in zip(axs[0], panels):
        for m in methods:
            have = [(x, p["methods"][m]) for x, p in zip(xs, points) if key in p["methods"].get(m, {}).get("mean", {})]
            if not have:
                continue
            colour, marker = styles[m]
            ax.errorbar([x for x, _ in have], [e["mean"][key] for _, e in have],
                        yerr=error_bars([spread(e, key) for _, e in have]),
                        marker=marker, markersize=6, markerfacecolor="none", markeredgewidth=1.5, capsize=3,
                        color=colour, label=m, clip_on=False)
        if scale == "symlog":
            ax.set_xscale("symlog", linthresh=1)
        elif scale == "log":
            ax.set_xscale("log")
        ax.set_xticks(xs, [str(v) for v in values])
        ax.minorticks_off()
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(axis["key"])
        ax.grid(alpha=0.3)
    axs[0][0].legend(fontsize="small")
    seeds = ", ".join(map(str, summary["seeds"]))
    note = error_note([e for p in points for e in p["methods"].values()])
    fig.suptitle(f"seeds {seeds}; {note}", fontsize="small")
    fig.tight_layout()
    return fig


def stream_accuracy_chart(methods: dict[str, dict[str, Any]], title: str, key: str) -> Any | None:
    """One panel per method with a stream: the accuracy (``key``) on each update's probes (a line
    per update j) after each update i >= j, with standard-error bars over seeds."""
    plt = pyplot()
    streams = {m: e["stream"] for m, e in methods.items() if "stream" in e and key in e["stream"]["matrix_mean"][0][0]}
    if not streams:
        return None
    k = len(next(iter(streams.values()))["updates"])
    fig, axes = plt.subplots(1, len(streams), figsize=(2.6 * len(streams) + 0.8, 3.0), sharey=True, squeeze=False)
    for ax, (name, stream) in zip(axes[0], streams.items()):
        several = len(methods[name]["seeds"]) > 1
        for j in range(k):
            xs = list(range(j + 1, k + 1))
            ys = [stream["matrix_mean"][i][j][key] for i in range(j, k)]
            errs = [stream["matrix_stderr"][i][j][key] for i in range(j, k)] if several else None
            ax.errorbar(xs, ys, yerr=errs, marker=MARKERS[j % len(MARKERS)], capsize=3, label=f"update {j + 1}")
        ax.set_title(name, fontsize="small")
        ax.set_xticks(range(1, k + 1))
        ax.set_xlabel("after update", fontsize="small")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(title, fontsize="small")
    axes[0][-1].legend(fontsize="x-small", title="probes of", title_fontsize="x-small")
    fig.suptitle(f"{title} on each update's probes, update after update\n"
                 f"{error_note([methods[m] for m in streams])}", fontsize="small")
    fig.tight_layout()
    return fig


def stream_cost_chart(methods: dict[str, dict[str, Any]]) -> Any | None:
    """The cumulative preparation seconds (training, generation, teacher, indexing) after each update, a line per
    method with a stream, each starting from what the method paid once (LaPael's paraphraser training)."""
    plt = pyplot()
    streams = {m: e["stream"] for m, e in methods.items() if "stream" in e}
    if not streams:
        return None
    styles = method_styles(list(methods))
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for name, stream in streams.items():
        total, ys = methods[name]["mean"].get("stream.one_time_seconds", 0.0), []
        for cost in stream["cost_mean"]:
            total += sum(cost.get(c, 0.0) for c in PREPARATION_COSTS)
            ys.append(total)
        colour, marker = styles[name]
        ax.plot(range(1, len(ys) + 1), ys, marker=marker, color=colour, label=name)
    ax.set_xticks(range(1, len(next(iter(streams.values()))["updates"]) + 1))
    ax.set_xlabel("after update", fontsize="small")
    ax.set_ylabel("seconds, cumulative", fontsize="small")
    ax.set_title("preparation cost over the stream\n(training, generation, teacher, indexing; mean over seeds)",
                 fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
