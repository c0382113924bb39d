"""Closed-book answer metrics with LaPael's normalisation, and summary statistics.

Normalisation ``lapael``: lower-case, every non-alphanumeric character becomes a space,
articles (a, an, the) are removed from the gold answer only; tokens are whitespace-separated.
Per answer: token EM, token F1, recall (share of gold tokens found in the prediction) and
accuracy = recall > 0.7. With several gold aliases the best alias counts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

NORMALISATION = "lapael: lower-case, non-alphanumerics to spaces, articles removed from gold only"
ACCURACY_RECALL = 0.7
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_ARTICLES = {"a", "an", "the"}


def tokens(text: str, *, drop_articles: bool = False) -> list[str]:
    toks = _NON_ALNUM.sub(" ", text.lower()).split()
    return [t for t in toks if t not in _ARTICLES] if drop_articles else toks


def contains_run(haystack: list[str], needle: list[str]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as consecutive tokens (an empty needle: False)."""
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _score_one(pred: list[str], gold: list[str]) -> dict[str, float]:
    common = sum((Counter(pred) & Counter(gold)).values())
    recall = common / len(gold) if gold else float(not pred)
    precision = common / len(pred) if pred else float(not gold)
    f1 = 0.0 if common == 0 else 2 * precision * recall / (precision + recall)
    return {"em": float(pred == gold), "f1": f1, "recall": recall, "accuracy": float(recall > ACCURACY_RECALL)}


def score_answer(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """EM, F1, recall, accuracy of ``prediction`` against the best of ``answers``."""
    pred = tokens(prediction)
    scores = [_score_one(pred, tokens(a, drop_articles=True)) for a in answers]
    return max(scores, key=lambda s: (s["accuracy"], s["f1"], s["em"]))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample std / sqrt(n)); 0 for a single value."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)
