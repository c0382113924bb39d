"""The accuracy-retention frontier: the Pareto set, open-book methods told apart, the recommendation line."""

import pytest

from kinject.report.aggregate import build_results
from kinject.report.frontier import is_open_book, pareto_set, recommendation
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
    assert line == ("recommendation: no closed-book method keeps retention >= 0.9; the one that keeps most is "
                    "ft-para (retention 0.600 ± 0.000, MCQ accuracy 0.755 ± 0.005)")


def test_terminal_and_report_md_carry_the_line_at_the_run_s_threshold():
    results = _results(POINTS, min_retention=0.5)
    assert "ft-para is the most accurate" in format_table(results)
    assert "**recommendation: among closed-book methods keeping retention >= 0.5, ft-para" in report_markdown(results)
    assert "recommendation" not in format_table(_results({"rag": POINTS["rag"]}))
