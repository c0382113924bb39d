"""Lexical retrieval: BM25 over the same chunks the dense index holds (``retrieval.mode=bm25``),
and reciprocal rank fusion of several rankings (``retrieval.mode=hybrid``).

BM25 is bm25s's Lucene variant (k1 1.5, b 0.75) over lower-cased word tokens with English stop
words removed and no stemming. It is built in memory from the chunks each time a retriever opens
(an index directory from ``kinject index build`` stores the chunks; the BM25 statistics are
recomputed from them, which takes seconds where embedding the same chunks takes minutes).
"""

from __future__ import annotations

from collections.abc import Sequence

from kinject.retrieval.chunking import Chunk
from kinject.retrieval.index import Hit

STOPWORDS = "en"


class LexicalIndex:
    """BM25 over ``chunks`` (in the dense index's order)."""

    def __init__(self, chunks: Sequence[Chunk], k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        self.chunks = list(chunks)
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        tokens = bm25s.tokenize([c.text for c in self.chunks], stopwords=STOPWORDS, show_progress=False)
        self._bm25.index(tokens, show_progress=False)

    def search(self, questions: Sequence[str], k: int) -> list[list[Hit]]:
        """The ``k`` best chunks per question by BM25 score (a chunk sharing no term scores 0 and
        is left out, so a list may be shorter than ``k``)."""
        import bm25s

        k = min(k, len(self.chunks))
        if not questions or k == 0:
            return [[] for _ in questions]
        tokens = bm25s.tokenize(list(questions), stopwords=STOPWORDS, return_ids=False, show_progress=False)
        ids, scores = self._bm25.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [[Hit(self.chunks[int(i)], float(s), rank) for rank, (i, s) in enumerate(
                    ((i, s) for i, s in zip(row_ids, row_scores) if s > 0), start=1)]
                for row_ids, row_scores in zip(ids, scores)]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int, constant: int = 60) -> list[Hit]:
    """The ``k`` chunks with the largest sum over ``rankings`` of 1 / (``constant`` + rank)
    (Cormack et al. 2009; 60 is their constant). A chunk is identified by its id; ties keep the
    order of first appearance. The hits' scores are the fused sums."""
    fused: dict[str, float] = {}
    chunk: dict[str, Chunk] = {}
    for ranking in rankings:
        for hit in ranking:
            fused[hit.chunk.id] = fused.get(hit.chunk.id, 0.0) + 1.0 / (constant + hit.rank)
            chunk.setdefault(hit.chunk.id, hit.chunk)
    best = sorted(fused, key=lambda cid: -fused[cid])[:k]
    return [Hit(chunk[cid], fused[cid], rank) for rank, cid in enumerate(best, start=1)]
