"""report.html and its charts: structure, error bars only over seeds, sweep axes, `kinject report DIR`."""

import json
from html.parser import HTMLParser

import pytest
from matplotlib.container import BarContainer

from kinject.cli import main
from kinject.report import charts
from kinject.report.aggregate import build_results
from kinject.report.html import run_html, sweep_html

ACCURACY = {"base": 0.25, "ft": 0.6, "ft-para": 0.75, "rag": 0.92}


def _cell(method: str, seed: int) -> dict:
    acc = ACCURACY[method] + 0.01 * seed
    trained = method.startswith("ft")
    return {"method": method, "seed": seed,
            "metrics": {"mcq.acc": acc, "qa.accuracy": acc / 2, "qa.f1": acc / 3, "cloze.accuracy": acc / 4,
                        "retention.accuracy": 1.0 - acc / 2 if trained else 0.95},
            "cost": {"train_tokens": 1000 * trained, "train_seconds": 100.0 * trained + seed,
                     "train_steps": 30 * trained, "wall_seconds": 200.0},
            "precision": {"train": "fp32" if trained else None, "eval": "fp32"}, "info": {}}


def _results(seeds: list[int], methods=tuple(ACCURACY)) -> dict:
    cells = {m: {s: _cell(m, s) for s in seeds} for m in methods}
    return build_results(cells, config={}, model={"name": "tiny", "path": "/models/tiny"},
                         data={"name": "builtin", "documents": 3, "probes": 12, "hash": {str(s): "h" for s in seeds}})


class _Outline(HTMLParser):
    """The parts of a page a test checks: tags counted, table rows' first cells, figure captions, text."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.rows: list[list[str]] = []
        self.captions: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data):
        self.text.append(data)
        if "td" in self._in or "th" in self._in:
            self.rows[-1].append(data)
        if "figcaption" in self._in:
            self.captions.append(data)


def _outline(page: str) -> _Outline:
    parser = _Outline()
    parser.feed(page)
    return parser


def test_report_html_has_the_table_one_image_per_chart_and_the_seeds_line():
    page = run_html(_results([0, 1, 2]))
    outline = _outline(page)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "<link" not in page
    assert 'src="http' not in page and "url(" not in page  # self-contained: nothing fetched
    assert outline.tags["table"] == 3 and outline.tags["details"] == 1  # the comparison, the frontier, per seed
    start = next(i for i, r in enumerate(outline.rows) if r[:2] == ["method", "seed"])
    main_table, frontier, per_seed = outline.rows[:5], outline.rows[5:start], outline.rows[start:]
    assert frontier[0][-1] == "Pareto set" and len(frontier) == 4  # the three methods that inject, most accurate first
    assert [r[0] for r in main_table] == ["method", *ACCURACY]
    assert main_table[0][1] == "MCQ acc" and main_table[2][1:3] == ["0.610", "± 0.006"]
    assert per_seed[0][:3] == ["method", "seed", "MCQ acc"] and per_seed[6][:3] == ["ft", "2", "0.620"]
    # five measures as bars, then accuracy against retention and against training cost
    assert outline.tags["figure"] == outline.tags["img"] == 7
    assert all(src.startswith("data:image/svg+xml;base64,") for src in outline.images)
    assert "seeds: 0, 1, 2 (mean ± standard error over seeds)" in "".join(outline.text)
    assert any("against general knowledge kept" in c for c in outline.captions)
    # the best mean of each accuracy column in bold, among the methods that inject (base is the reference)
    assert '<td class="best">0.930<span class="se">± 0.006</span></td>' in page
    assert page.count('<td class="best">0.950<span class="se">') == 1


def test_paired_differences_get_their_own_table():
    cells = {m: {s: _cell(m, s) for s in (0, 1)} for m in ("ft", "ft-para")}
    cells["ft+rag"] = {s: {**_cell("ft", s), "method": "ft+rag"} for s in (0, 1)}
    results = build_results(cells, config={}, model={"name": "t", "path": "p"},
                            data={"name": "b", "documents": 1, "probes": 1, "hash": {}})
    outline = _outline(run_html(results))
    assert outline.tags["table"] == 4 and [r[0] for r in outline.rows if "vs" in r[0]] == ["ft+rag vs ft"]


def test_error_bars_only_over_several_seeds_and_the_chart_says_so():
    plt = charts.pyplot()
    for seeds, drawn, note in (([0], False, "one seed: no error bars"),
                               ([0, 1, 2], True, "bars: standard error over seeds")):
        methods = _results(seeds)["methods"]
        fig = charts.bar_chart(methods, "MCQ accuracy", "mcq.acc")
        ax = fig.axes[0]
        bars = next(c for c in ax.containers if isinstance(c, BarContainer))
        assert len(bars) == len(methods) and (bars.errorbar is not None) is drawn
        assert note in ax.get_title() and ax.get_ylim()[0] == 0
        plt.close(fig)
        fig = charts.scatter_chart(methods, charts.RETENTION, ("MCQ accuracy", "mcq.acc"), x_unit_interval=True)
        crosses = [c for c in fig.axes[0].containers if c.has_xerr and c.has_yerr]
        assert (len(crosses) == len(methods)) is drawn and note in fig.axes[0].get_title()
        plt.close(fig)
    one = _outline(run_html(_results([0])))
    assert "seeds: 0 (one seed, no error bar)" in "".join(one.text)


def test_trade_off_charts_plot_the_first_accuracy_a_run_has():
    methods = _results([0, 1])["methods"]
    assert charts.headline(methods) == ("MCQ accuracy", "mcq.acc")
    for e in methods.values():  # a SQuAD-like run: QA only
        e["mean"] = {k: v for k, v in e["mean"].items() if not k.startswith(("mcq", "cloze"))}
    assert charts.headline(methods) == ("QA accuracy", "qa.accuracy")
    assert _outline(run_html({**_results([0, 1]), "methods": methods})).tags["img"] == 5  # QA acc, F1, retention + 2


@pytest.mark.parametrize("values, scale", [([0, 1, 2, 5, 10], "symlog"), ([1, 2, 5, 10], "log"),
                                           ([1e-5, 1e-4, 1e-3], "log"), ([0, 1, 2, 5], None),
                                           ([0.5, 1.0, 2.0], None), (["[qa]", "[mcq]"], None), ([-1, 10], None)])
def test_sweep_axis_is_logarithmic_for_values_spanning_a_decade(values, scale):
    assert charts.count_scale(values) == scale


def _summary(seeds: list[int]) -> dict:
    entry = lambda q: {"seeds": seeds, "mean": {"qa.accuracy": q, "mcq.acc": 0.5},  # noqa: E731
                       "stderr": {"qa.accuracy": 0.02, "mcq.acc": 0.01}}
    return {"axes": [{"key": "para.k", "values": [0, 1, 2, 5, 10]}], "seeds": seeds, "normalisation": "n",
            "created": "now",
            "points": [{"label": f"para.k={k}", "settings": {"para.k": k}, "dir": f"{i}_para.k={k}",
                        "methods": {"ft-para": entry(0.05 * k), "ft": entry(0.05 * k)}}
                       for i, k in enumerate([0, 1, 2, 5, 10])]}


def test_sweep_chart_reads_counts_on_a_log_axis_accuracies_in_0_1_and_distinct_markers():
    plt = charts.pyplot()
    fig = charts.sweep_chart(_summary([0]))
    for ax in fig.axes:
        assert ax.get_xscale() == "symlog" and ax.get_ylim() == (0, 1)
        markers = {c.get_label(): c.lines[0].get_marker() for c in ax.containers}
        assert set(markers) == {"ft", "ft-para"} and len(set(markers.values())) == 2  # coinciding lines differ
    assert "no error bars" in fig._suptitle.get_text() and "standard error" not in fig._suptitle.get_text()
    plt.close(fig)
    fig = charts.sweep_chart(_summary([0, 1]))
    assert "standard error over seeds" in fig._suptitle.get_text()
    plt.close(fig)


def test_sweep_report_links_each_point():
    outline = _outline(sweep_html(_summary([0, 1])))
    assert outline.tags["img"] == 1 and outline.tags["table"] == 1
    assert len(outline.rows) == 1 + 10  # header, then (point, method)
    assert outline.links == [f"{p['dir']}/report.html" for p in _summary([0])["points"]]


def test_kinject_report_rewrites_the_reports_from_results_json_alone(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / "ft-seed0.json").write_text("{}")  # a cell it must not touch
    (run / "results.json").write_text(json.dumps(_results([0, 1])))
    assert main(["report", str(run)]) == 0
    assert _outline((run / "report.html").read_text()).tags["img"] == 7
    assert "| ft-para |" in (run / "report.md").read_text()
    assert (run / "cells" / "ft-seed0.json").read_text() == "{}"
    assert f"wrote {run / 'report.html'}" in capsys.readouterr().out


def test_kinject_report_of_a_sweep_renders_every_point(tmp_path):
    sweep = tmp_path / "sweep"
    summary = _summary([0, 1])
    for p in summary["points"]:
        (sweep / p["dir"]).mkdir(parents=True)
        (sweep / p["dir"] / "results.json").write_text(json.dumps(_results([0, 1])))
    (sweep / "sweep.json").write_text(json.dumps(summary))
    assert main(["report", str(sweep)]) == 0
    assert (sweep / "sweep.png").read_bytes()[:4] == b"\x89PNG" and (sweep / "report.html").is_file()
    assert all((sweep / p["dir"] / "report.html").is_file() for p in summary["points"])


@pytest.mark.parametrize("content, message", [(None, "holds no results.json or sweep.json"),
                                              ("{not json", "results.json:1: malformed JSON"),
                                              ('{"methods": {}}', "results.json: missing key 'seeds'")])
def test_kinject_report_refuses_what_is_not_a_run(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "report.html").exists()
