"""Generated replies cached on disk, content-addressed, so a data set is generated once.

A request's key is the sha256 of the generator's fingerprint (model, weights, sampling settings),
the messages and the number of replies; its record (``$KINJECT_CACHE/generations/<k[:2]>/<k>.json``)
holds the replies and what they cost when they were generated.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kinject.data.jsonl import atomic_write_text
from kinject.generation.generators import Generator, Messages, Sampled
from kinject.hardware import on_main_process


@dataclass
class GenerationCost:
    """What a generated data set cost: requests, how many came from the cache, and the tokens and
    wall seconds of generating them (when they were generated, cached or not)."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: GenerationCost) -> None:
        """Count ``other``'s requests, tokens and seconds in this one."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


_LEDGER: ContextVar[set[str] | None] = ContextVar("kinject_paid_keys", default=None)


@contextmanager
def pay_once(ledger: set[str] | None = None) -> Iterator[None]:
    """Within it, a generated or teacher item's tokens and seconds count only the first time
    ``ledger`` meets its key, and the key is added (``ledger`` None: the one in force, else a new
    one). A stream's updates share one ledger: what is derived from the frozen model again at a
    later update (``+anchor``'s texts, ``+retrain``'s paraphrases of earlier updates) was paid
    once, as a user who keeps the cache pays it; so are a cell's phases."""
    if ledger is None:
        ledger = _LEDGER.get()
    token = _LEDGER.set(set() if ledger is None else ledger)
    try:
        yield
    finally:
        _LEDGER.reset(token)


def first_use(key: str) -> bool:
    """Whether ``key``'s cost counts: always outside :func:`pay_once`; inside, the first time."""
    ledger = _LEDGER.get()
    if ledger is None:
        return True
    if key in ledger:
        return False
    ledger.add(key)
    return True


def generation_cache(enabled: bool) -> Path | None:
    """Where generated replies are cached (``$KINJECT_CACHE/generations``), or None when disabled."""
    from kinject.models import cache_dir

    return cache_dir() / "generations" if enabled else None


def read_cached(cache: Path | None, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The entries of ``keys`` stored under ``cache`` (``<cache>/<k[:2]>/<k>.json``); none without a cache."""
    found: dict[str, dict[str, Any]] = {}
    if cache is not None:
        for k in keys:
            f = cache / k[:2] / f"{k}.json"
            if f.is_file():
                found[k] = json.loads(f.read_text())
    return found


def write_cached(cache: Path, key: str, entry: dict[str, Any]) -> None:
    """Store ``entry`` under ``key`` whole (a temporary file, then a rename)."""
    atomic_write_text(cache / key[:2] / f"{key}.json", json.dumps(entry, ensure_ascii=False))


def request_key(fingerprint: str, messages: Messages, n: int) -> str:
    blob = json.dumps({"generator": fingerprint, "messages": messages, "n": n}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_sample(generator: Generator, requests: list[Messages], n: int, cache: Path | None,
                  cost: GenerationCost) -> list[Sampled]:
    """``n`` replies per request: from ``cache`` where stored, else generated ``generator.cfg.batch_size``
    requests at a time, each batch stored as soon as it is done. Identical requests (two documents
    with the same text) are generated once and share their replies, as they would from the cache;
    ``cost`` counts each distinct request's tokens and seconds once (see :func:`pay_once`). Under a
    distributed launch rank 0 reads the cache and generates, and every rank gets its replies."""
    keys = [request_key(generator.fingerprint, m, n) for m in requests]
    first: dict[str, int] = {}  # each distinct key's first request, in order
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    found, missing = on_main_process(lambda: _replies(generator, requests, n, cache, first))
    cost.requests += len(requests)
    cost.cached += len(requests) - missing
    for k in filter(first_use, first):
        cost.prompt_tokens += found[k]["prompt_tokens"]
        cost.completion_tokens += found[k]["completion_tokens"]
        cost.seconds += found[k]["seconds"]
    return [Sampled(found[k]["replies"], found[k]["prompt_tokens"], found[k]["completion_tokens"]) for k in keys]


def _replies(generator: Generator, requests: list[Messages], n: int, cache: Path | None, first: dict[str, int]
             ) -> tuple[dict[str, dict[str, Any]], int]:
    """Each key of ``first``'s stored entry (read, or generated and stored), and how many were generated."""
    found = read_cached(cache, first)
    missing = [k for k in first if k not in found]
    step = generator.cfg.batch_size
    slices = range(0, len(missing), step)
    for lo in tqdm(slices, desc="generating", disable=not generator.cfg.progress or len(slices) < 2, leave=False):
        batch = missing[lo:lo + step]
        start = time.perf_counter()
        sampled = generator.sample([requests[first[k]] for k in batch], n)
        share = (time.perf_counter() - start) / len(batch)
        for k, s in zip(batch, sampled):
            found[k] = {**asdict(s), "seconds": share}
            if cache is not None:  # stored batch by batch: an interrupted run keeps what it generated
                write_cached(cache, k, found[k])
    return found, len(missing)
