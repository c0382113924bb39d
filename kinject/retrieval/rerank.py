"""Reranking retrieved chunks with a cross-encoder (``retrieval.rerank``).

The first stage (dense, bm25 or hybrid) proposes ``retrieval.candidates`` chunks per question; a
sentence-transformers ``CrossEncoder`` reads each (question, chunk) pair and the ``k`` best by its
score are kept. No package on the index this project installs from ships cross-encoder weights
(nothing is fetched at run time), so ``retrieval.rerank`` is a local directory (for example
cross-encoder/ms-marco-MiniLM-L-6-v2 saved with ``save_pretrained``) or a hub id already in the
local hub cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kinject.artifacts import directory_fingerprint
from kinject.errors import UserError
from kinject.retrieval.index import Hit


def resolve_reranker_path(name: str) -> str:
    """``name`` as a cross-encoder directory (with its config.json) or a cached hub id."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        if not (path / "config.json").is_file():
            raise UserError(f"retrieval.rerank: {name!r} is not a model directory (no config.json)")
        return str(path)
    from huggingface_hub import try_to_load_from_cache

    if try_to_load_from_cache(name, "config.json") is None:
        raise UserError(f"retrieval.rerank: {name!r} is not a local directory, and not in the hub cache")
    return name


class Reranker:
    """A cross-encoder scoring (question, passage) pairs; higher is more relevant."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        from kinject.hardware import compute_device

        self.name = name
        self.path = resolve_reranker_path(name)
        self.batch_size = batch_size
        try:
            self.model = CrossEncoder(self.path, device=str(compute_device()))
        except (OSError, ValueError) as exc:
            raise UserError(f"retrieval.rerank: {name!r} could not be loaded ({str(exc).splitlines()[0]})") from None
        if int(self.model.num_labels) != 1:
            raise UserError(f"retrieval.rerank: {name!r} has {self.model.num_labels} output labels; "
                            "a reranker scores with one")
        self.fingerprint = directory_fingerprint(self.path) if Path(self.path).is_dir() else None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint}

    def rerank(self, questions: Sequence[str], candidates: Sequence[Sequence[Hit]], k: int) -> list[list[Hit]]:
        """The ``k`` best of each question's candidates by the cross-encoder's score (ranks anew,
        ``Hit.score`` = that score); all pairs are scored in one batched pass."""
        pairs = [(q, h.chunk.text) for q, hits in zip(questions, candidates) for h in hits]
        scores = iter(self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                         convert_to_numpy=True).tolist() if pairs else [])
        out = []
        for hits in candidates:
            scored = sorted(((next(scores), i) for i in range(len(hits))), key=lambda si: (-si[0], si[1]))
            out.append([Hit(hits[i].chunk, float(s), rank) for rank, (s, i) in enumerate(scored[:k], start=1)])
        return out
