"""The accuracy-retention frontier: the Pareto set, open-book methods told apart, the recommendation line."""

import pytest

from kinject.report.aggregate import build_results
from kinject.report.frontier import agreement_line, frontier_rows, is_open_book, pareto_set, recommendation, spearman
from kinject.report.render import format_table, report_markdown

# (MCQ accuracy, retention, train seconds) per method
POINTS = {"base": (.2, 1.0, 0), "ft": (.6, .4, 100), "ft-para": (.75, .6, 120), "lapael": (.55, .92, 400),
          "lapael+para": (.5, .91, 500), "rag": (.95, .94, 0)}


def _results(points, seeds=(0, 1), min_retention=None):
    cells = {m: {s: {"metrics": {"mcq.acc": a + .01 * s, "retention.accuracy": r},
                     "cost": {"train_seconds": float(t), "index_seconds": 3.0 * (m == "rag")}, "info": {}}
                 for s in seeds} for m, (a, r, t) in points.items()}
    config = {} if min_retention is None else {"report": {"min_retention": min_retention}}
    return build_results(cells, config=config, model={"name": "m", "path": "/m"},
                         data={"name": "builtin", "documents": 1, "probes": 1, "hash": {str(s): "h" for s in seeds}})


def test_the_pareto_set_drops_every_dominated_point():
    points = {m: (a, r) for m, (a, r, _) in POINTS.items()}
    assert pareto_set(points) == ["rag", "base"]
    points.pop("rag")
    assert pareto_set(points) == ["ft-para", "lapael", "base"]


@pytest.mark.parametrize("name, open_book", [("rag", True), ("ft+rag", True), ("oracle", True),
                                             ("ft-para+qa+oracle", True), ("ft-para+qa", False), ("lapael", False)])
def test_open_book_methods_are_told_apart_by_name(name, open_book):
    assert is_open_book(name) is open_book


def test_the_recommendation_names_the_best_method_that_keeps_retention_and_its_share_of_rag():
    methods = _results(POINTS)["methods"]
    line = recommendation(methods, 0.9)
    assert line.startswith("recommendation: among closed-book methods keeping retention >= 0.9, lapael is the most "
                           "accurate (MCQ accuracy 0.555 ± 0.005, retention 0.920 ± 0.000)")
    assert "0.58 of rag's MCQ accuracy (0.955 ± 0.005), after 400 s of preparation" in line
    assert "against rag's 3 s" in line
    assert recommendation(methods, 0.5).split(", ")[1] == "ft-para is the most accurate (MCQ accuracy 0.755 ± 0.005"


def test_without_a_method_that_keeps_retention_it_names_the_one_that_keeps_most():
    line = recommendation(_results({k: POINTS[k] for k in ("ft", "ft-para", "rag")})["methods"], 0.9)
    assert line.startswith("recommendation: no closed-book method keeps retention >= 0.9; the one that keeps most is "
                           "ft-para (retention 0.600 ± 0.000, MCQ accuracy 0.755 ± 0.005); 0.79 of rag's MCQ accuracy")
    assert line.endswith("after 120 s of preparation (training, generation, teacher, indexing) against rag's 3 s")


def test_the_frontier_table_marks_the_closed_book_pareto_set_and_shows_the_broader_measures():
    results = _results(POINTS)
    for m, e in results["methods"].items():  # a broader measure on some methods only: "-" elsewhere
        if m != "lapael+para":
            e["mean"]["general_qa.accuracy"], e["stderr"]["general_qa.accuracy"] = POINTS[m][1] / 2, 0.0
    header, rows = frontier_rows(results["methods"])
    assert header == ["method", "book", "MCQ accuracy", "of rag", "retention", "general QA", "Pareto set"]
    by_name = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == ["rag", "ft-para", "ft", "lapael", "lapael+para"]  # most accurate first; base aside
    assert by_name["rag"][1] == "open" and by_name["rag"][-1] == ""  # a reference, not on the closed-book set
    assert {n for n, r in by_name.items() if r[-1] == "yes"} == {"ft-para", "lapael"}
    assert by_name["lapael+para"][5] == "-" and by_name["ft"][5] == "0.200 ± 0.000"
    assert by_name["rag"][3] == "1.00" and by_name["ft-para"][3] == f"{POINTS['ft-para'][0] / POINTS['rag'][0]:.2f}"
    assert "## Accuracy against retention" in report_markdown(results) and "the frontier" in format_table(results)


def test_the_agreement_line_is_the_rank_correlation_with_retention():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)  # ties: their mean rank
    results = _results(POINTS)
    for m, e in results["methods"].items():  # general KL: lower keeps more, so it agrees when it falls
        e["mean"]["general_kl.kl"] = 1 - POINTS[m][1]
    assert "general KL +1.00 (n = 5)" in agreement_line(results["methods"])
    assert agreement_line(_results({k: POINTS[k] for k in ("ft", "rag")})["methods"]) is None


def test_terminal_and_report_md_carry_the_line_at_the_run_s_threshold():
    results = _results(POINTS, min_retention=0.5)
    assert "ft-para is the most accurate" in format_table(results)
    assert "**recommendation: among closed-book methods keeping retention >= 0.5, ft-para" in report_markdown(results)
    assert "recommendation" not in format_table(_results({"rag": POINTS["rag"]}))
