"""A stream of knowledge updates: the corpus split into K updates, injected one after another.

With ``stream.updates`` K > 1, every (method, seed) cell of ``kinject bench`` is a stream: the
method injects update 1 into the base model, update 2 into the model that produced, and so on.
After each update the model is evaluated on the probes of every update so far (one row of the
accuracy matrix: after update i, on update j <= i) and on the general-knowledge kinds
(``retention`` and the ``general_*`` kinds in ``eval.kinds``). A cell's ``metrics`` are those of
the final model on every probe, so a stream's table compares with a one-shot run's; its
``stream`` field holds the matrix, the retention after each update and each update's cost, and
``stream.*`` metrics summarise it (see :func:`stream_summary`).

How the corpus is split (``stream.split``): ``order``, the documents in file order cut into K
runs of near-equal size; ``shuffled``, the same after shuffling them with the run seed (for the
built-in world, whose file lists organisations before people); ``date``, the documents sorted by
their ``date`` field and cut into K runs at date boundaries, so that one date is never split.
Each probe goes with its ``doc_id``'s update.

What carries over between updates: the trained weights (a LoRA adapter is merged before the next
update trains a fresh one). Retrieval (``+rag``) indexes every document seen so far, each
update's appended to the index of the updates before, and ``+oracle`` places any of them
(``InjectRequest.seen``). What a method derives from "the model as loaded" (distill's teacher,
+replay and +anchor's texts, +delia's self-samples) comes from the frozen base model, loaded
beside the one being trained for such methods only (their spec ``reads_model``). ``<m>+retrain``
is the baseline a user compares with: at each update it retrains ``m`` from the base model on
every update so far.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, one_of
from kinject.data.schema import Corpus, Document
from kinject.errors import UserError
from kinject.evaluation.metrics import mean, stderr

SPLITS = ("order", "shuffled", "date")
# What a method spends before it can answer, per update (seconds, from each update's cost).
PREPARATION_COSTS = ("train_seconds", "generation_seconds", "teacher_seconds", "index_seconds")
# Paid once for the whole stream, not per update (seconds, from a method's info): LaPael's
# paraphraser training, which its authors reuse for every knowledge update.
ONE_TIME_INFO = ("paraphraser_train_seconds",)


@dataclass
class StreamConfig:
    """``updates``: K (1: no stream, one injection); ``split``: ``order`` | ``shuffled`` | ``date``."""

    updates: int = 1
    split: str = "order"

    CHECKS: ClassVar[dict[str, Check]] = {"updates": at_least(1), "split": one_of(*SPLITS)}


def _runs(n: int, k: int) -> list[range]:
    """``range(n)`` cut into ``k`` consecutive runs whose sizes differ by at most one."""
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def _date_groups(documents: list[Document], k: int, name: str) -> list[list[Document]]:
    """Documents sorted by date, cut into ``k`` runs at date boundaries (near-equal sizes)."""
    undated = [d.id for d in documents if not d.date]
    if undated:
        raise UserError(f"stream.split=date: document {undated[0]!r} of corpus {name!r} has no 'date' field "
                        f"({len(undated)} of {len(documents)} have none)")
    dates = sorted({d.date for d in documents})
    if k > len(dates):
        raise UserError(f"stream.updates={k}: corpus {name!r} has only {len(dates)} distinct dates to split by")
    by_date = {day: [d for d in documents if d.date == day] for day in dates}
    sizes = [len(by_date[day]) for day in dates]
    groups, start = [], 0
    for i in range(1, k):  # the date boundary nearest to i/k of the documents, leaving one date per later update
        target = i * len(documents) / k
        best = min(range(start + 1, len(dates) - (k - i) + 1), key=lambda c: abs(sum(sizes[:c]) - target))
        groups.append([d for day in dates[start:best] for d in by_date[day]])
        start = best
    groups.append([d for day in dates[start:] for d in by_date[day]])
    return groups


def split_updates(corpus: Corpus, cfg: StreamConfig, seed: int) -> list[Corpus]:
    """The corpus as ``cfg.updates`` corpora (documents and their probes, facts and paraphrases;
    the prompt and the training splits shared). A UserError (one line) when K exceeds the
    documents, a probe names no document of the corpus, or an update would hold no probe."""
    check_section(cfg, "stream")
    k, docs = cfg.updates, list(corpus.documents)
    if k > len(docs):
        raise UserError(f"stream.updates={k}: corpus {corpus.name!r} has only {len(docs)} "
                        f"document{'s' if len(docs) > 1 else ''}")
    ids = {d.id for d in docs}
    orphan = next((p for p in corpus.probes if p.doc_id not in ids), None)
    if orphan is not None:
        raise UserError(f"stream: probe {orphan.id!r} of corpus {corpus.name!r} names no document of the corpus "
                        f"(doc_id {orphan.doc_id!r}); a stream assigns each probe to its document's update")
    if cfg.split == "date":
        groups = _date_groups(docs, k, corpus.name)
    else:
        if cfg.split == "shuffled":
            random.Random(seed).shuffle(docs)
        groups = [[docs[i] for i in run] for run in _runs(len(docs), k)]
    updates = [restrict(corpus, group, f"{corpus.name}/update{i + 1}") for i, group in enumerate(groups)]
    for i, update in enumerate(updates):
        if not update.probes:
            raise UserError(f"stream: update {i + 1} of {k} of corpus {corpus.name!r} ({len(update.documents)} "
                            "documents) has no probe to measure it by; use fewer updates")
    return updates


def restrict(corpus: Corpus, documents: list[Document], name: str) -> Corpus:
    """``corpus`` with only ``documents`` and what belongs to them."""
    ids = {d.id for d in documents}
    return dataclasses.replace(
        corpus, name=name, documents=list(documents), probes=[p for p in corpus.probes if p.doc_id in ids],
        facts=[f for f in corpus.facts if f.doc_id in ids],
        paraphrases={k: v for k, v in corpus.paraphrases.items() if k in ids})


def join_updates(parts: Sequence[Corpus], name: str) -> Corpus:
    """Updates (or any corpora sharing a prompt) as one corpus: their documents, probes, facts and
    paraphrases in order; the rest from the first."""
    return dataclasses.replace(
        parts[0], name=name, documents=[d for c in parts for d in c.documents],
        probes=[p for c in parts for p in c.probes], facts=[f for c in parts for f in c.facts],
        paraphrases={k: v for c in parts for k, v in c.paraphrases.items()})


def stream_summary(matrix: list[list[dict[str, float]]], costs: list[dict[str, float]],
                   info: dict[str, Any] | None = None) -> dict[str, float]:
    """``stream.*`` metrics from the accuracy matrix (``matrix[i][j]``: flattened metrics after
    update i on update j's probes), each update's cost and the method's info (its one-time costs):

    - ``stream.final.<metric>``: the mean over updates of the final model's value (each update
      weighs the same; an update without probes of the metric's kind is left out);
    - ``stream.forgetting.<metric>``: the mean over updates j < K (with such probes) of (the best
      value on j after any update i < K, i >= j) minus (the final value on j); > 0 is knowledge lost;
    - ``stream.cumulative_<cost>``: a cost summed over the updates;
    - ``stream.one_time_seconds``: what the method paid once for every update (:data:`ONE_TIME_INFO`);
    - ``stream.total_preparation_seconds``: that plus the :data:`PREPARATION_COSTS` of every update.
    """
    k = len(matrix)
    out: dict[str, float] = {}
    for key in dict.fromkeys(key for row in matrix[-1] for key in row):
        held = [j for j in range(k) if key in matrix[-1][j]]  # the updates with probes of that kind
        out[f"stream.final.{key}"] = sum(matrix[-1][j][key] for j in held) / len(held)
        lost = [max(matrix[i][j][key] for i in range(j, k - 1)) - matrix[-1][j][key] for j in held if j < k - 1]
        if lost:
            out[f"stream.forgetting.{key}"] = sum(lost) / len(lost)
    for key in costs[0]:
        out[f"stream.cumulative_{key}"] = float(sum(c[key] for c in costs))
    once = float(sum((info or {}).get(key, 0.0) for key in ONE_TIME_INFO))
    out["stream.one_time_seconds"] = once
    out["stream.total_preparation_seconds"] = once + sum(c.get(key, 0.0) for c in costs for key in PREPARATION_COSTS)
    return out


def aggregate_stream(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream part of a method's results entry from its cells (one per seed): the matrix, the
    general metrics after each update and each update's cost, as mean and standard error over the
    seeds (``[i][j][key]`` / ``[i][key]``)."""
    def over_seeds(rows: list[Any]) -> tuple[Any, Any]:
        first = rows[0]
        if isinstance(first, dict):
            keys = [k for k in first if all(k in r for r in rows)]
            return ({k: mean([r[k] for r in rows]) for k in keys}, {k: stderr([r[k] for r in rows]) for k in keys})
        pairs = [over_seeds([r[i] for r in rows]) for i in range(len(first))]
        return [m for m, _ in pairs], [e for _, e in pairs]

    streams = [c["stream"] for c in cells]
    out: dict[str, Any] = {"split": streams[0]["split"], "updates": streams[0]["updates"]}
    for part in ("matrix", "general", "cost"):
        out[f"{part}_mean"], out[f"{part}_stderr"] = over_seeds([s[part] for s in streams])
    return out
