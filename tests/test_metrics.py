import math

from kinject.evaluation.metrics import mean, score_answer, stderr, tokens


def test_normalisation_lowercases_and_splits_non_alphanumerics():
    assert tokens("The Main-Building, (1860)!") == ["the", "main", "building", "1860"]
    assert tokens("The Main Building", drop_articles=True) == ["main", "building"]


def test_exact_match_and_accuracy():
    s = score_answer("Carolina Panthers", ["Carolina Panthers"])
    assert s == {"em": 1.0, "f1": 1.0, "recall": 1.0, "accuracy": 1.0}


def test_articles_removed_from_gold_only():
    # LaPael: the gold loses its article, the prediction keeps it -> EM 0 but recall 1.
    s = score_answer("the Main Building", ["the Main Building"])
    assert s["em"] == 0.0 and s["recall"] == 1.0 and s["accuracy"] == 1.0
    assert math.isclose(s["f1"], 0.8)


def test_partial_answer_below_recall_threshold():
    s = score_answer("Pedryth", ["Pedryth Bruligaiv"])
    assert s["recall"] == 0.5 and s["accuracy"] == 0.0 and s["em"] == 0.0


def test_best_alias_counts_and_wrong_answer_scores_zero():
    assert score_answer("NYC", ["New York", "NYC"])["em"] == 1.0
    assert score_answer("Paris", ["Tokyo"]) == {"em": 0.0, "f1": 0.0, "recall": 0.0, "accuracy": 0.0}


def test_mean_and_standard_error():
    assert mean([1.0, 2.0, 3.0]) == 2.0
    assert math.isclose(stderr([1.0, 2.0, 3.0]), 1 / math.sqrt(3))
    assert stderr([5.0]) == 0.0
