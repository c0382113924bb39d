"""A FAISS inner-product index over unit vectors, with its docstore, saved to and loaded from disk.

An index directory holds::

    meta.json      format, embedder (name, path, fingerprint, dim, prefixes), chunking, index
                   type, counts, and the sha256 of the two files below
    index.faiss    the FAISS index: exact (flat) below ``ann_threshold`` vectors, from there on
                   approximate, an HNSW graph (``ann="hnsw"``) or IVF-flat (``ann="ivf"``)
    chunks.jsonl   the docstore: one chunk per line, in vector order (FAISS keeps no text)

Loading checks every part (missing, corrupted, built by another embedder) and names the fault in
one line. FAISS is imported only after torch: the two bring their own OpenMP runtimes, and the
reverse order is known to crash on some platforms.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinject.artifacts import file_sha256, staged_directory
from kinject.data.jsonl import load_records, read_json, write_json, write_jsonl
from kinject.errors import UserError
from kinject.retrieval.chunking import Chunk

INDEX_FORMAT = 1
_FILES = ("meta.json", "index.faiss", "chunks.jsonl")


def import_faiss() -> Any:
    """``faiss``, imported after torch (see the module docstring)."""
    importlib.import_module("torch")
    return importlib.import_module("faiss")


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: ``rank`` is 1-based, ``score`` the inner product (cosine)."""

    chunk: Chunk
    score: float
    rank: int


ANN_TYPES = ("hnsw", "ivf")


def _ivf_lists(n: int) -> int:
    """IVF list count: ~4 sqrt(n), at most n / 39 so every list gets FAISS's 39 training points."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


class PassageIndex:
    """Chunks and their vectors, searchable by inner product. Build with :meth:`build`."""

    def __init__(self, index: Any, chunks: list[Chunk], meta: dict[str, Any]) -> None:
        self.index = index
        self.chunks = chunks
        self.meta = meta

    @classmethod
    def build(cls, chunks: Sequence[Chunk], vectors: np.ndarray, *, embedder: dict[str, Any],
              chunking: dict[str, Any], ann_threshold: int = 250_000, ann: str = "hnsw", nprobe: int = 128,
              hnsw_m: int = 32, ef_search: int = 64, seed: int = 0) -> PassageIndex:
        """Index ``vectors`` (n, dim) float32 unit rows, row i belonging to ``chunks[i]``: exact
        below ``ann_threshold`` rows, else ``ann``: ``hnsw`` (``hnsw_m`` neighbours a node,
        ``ef_search`` candidates a query) or ``ivf`` (~4 sqrt(n) lists, ``nprobe`` searched)."""
        faiss = import_faiss()
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not len(chunks):
            raise UserError("nothing to index: the corpus gave no chunks")
        n, dim = vectors.shape
        if n < ann_threshold:
            index = faiss.IndexFlatIP(dim)
            kind = {"type": "flat"}
        elif ann == "ivf":
            nlist = _ivf_lists(n)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            train = vectors
            if n > 256 * nlist:  # FAISS needs no more than 256 points per list to place centroids
                train = vectors[np.random.default_rng(seed).choice(n, 256 * nlist, replace=False)]
            index.train(train)
            index.nprobe = min(nprobe, nlist)
            kind = {"type": "ivf-flat", "nlist": nlist, "nprobe": index.nprobe}
        else:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = ef_search
            kind = {"type": "hnsw", "m": hnsw_m, "ef_search": ef_search}
        index.add(vectors)
        meta = {"format": INDEX_FORMAT, "embedder": embedder, "chunking": chunking, "index": kind,
                "chunks": n, "documents": len({c.doc_id for c in chunks}),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return cls(index, list(chunks), meta)

    def extend(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Append ``vectors`` (n, dim) float32 unit rows, row i belonging to ``chunks[i]``, in place:
        an exact or HNSW index grows as if built with them; an IVF index files them under the
        centroids it was trained with (not trained again)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if len(chunks):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.chunks += chunks
        self.meta |= {"chunks": len(self.chunks), "documents": len({c.doc_id for c in self.chunks}),
                      "extended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The top ``k`` chunks for each row of ``queries`` (m, dim), best first."""
        if not len(queries):
            return []
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self.chunks)))
        return [[Hit(self.chunks[i], float(s), r + 1) for r, (s, i) in enumerate(zip(row_s, row_i)) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    def save(self, out: Path, replace: bool = False) -> None:
        """Write the index directory ``out`` in one rename; an existing ``out`` is an error unless
        ``replace`` (kinject's own run directories), which swaps it out only once the new one is whole."""
        faiss = import_faiss()
        if out.exists() and not replace:
            raise UserError(f"{out}: already exists; choose a new index directory")
        with staged_directory(out, replace=True) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            write_jsonl(tmp / "chunks.jsonl", (c.to_dict() for c in self.chunks))
            self.meta["sha256"] = {f: file_sha256(tmp / f) for f in ("index.faiss", "chunks.jsonl")}
            write_json(tmp / "meta.json", self.meta)

    @classmethod
    def load(cls, path: Path, expect: dict[str, Any] | None = None) -> PassageIndex:
        """Open an index directory.

        ``expect``: the querying embedder's :meth:`Embedder.describe`; an index built with other
        weights (fingerprint) or other prefixes is refused.
        """
        meta = read_index_meta(path)
        built_by = meta["embedder"]
        if expect is not None:
            for key in ("fingerprint", "query_prefix", "passage_prefix"):
                if built_by.get(key) != expect.get(key):
                    raise UserError(f"{path}: built with embedder {built_by['name']!r} ({key} {built_by.get(key)!r}), "
                                    f"but this run embeds with {expect['name']!r} ({key} {expect.get(key)!r}); "
                                    "rebuild the index or match retrieval.embedder and its prefixes")
        for name, digest in meta["sha256"].items():
            if file_sha256(path / name) != digest:
                raise UserError(f"{path / name}: corrupted (its sha256 differs from the one in meta.json)")
        faiss = import_faiss()
        try:
            index = faiss.read_index(str(path / "index.faiss"))
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0]
            raise UserError(f"{path / 'index.faiss'}: not a readable FAISS index ({reason})") from None
        chunks = load_records(path / "chunks.jsonl", Chunk.from_dict)
        if not index.ntotal == len(chunks) == meta["chunks"] or index.d != built_by["dim"]:
            raise UserError(f"{path}: corrupted: {index.ntotal} vectors of dim {index.d}, {len(chunks)} chunks, "
                            f"meta.json says {meta['chunks']} of dim {built_by['dim']}")
        if meta["index"]["type"] == "ivf-flat":
            index.nprobe = meta["index"]["nprobe"]
        elif meta["index"]["type"] == "hnsw":
            index.hnsw.efSearch = meta["index"]["ef_search"]
        return cls(index, chunks, meta)


def read_index_meta(path: Path) -> dict[str, Any]:
    """An index directory's meta.json, checked: the directory, its three files, the fields."""
    if not path.is_dir():
        raise UserError(f"{path}: no such index directory")
    missing = [f for f in _FILES if not (path / f).is_file()]
    if missing:
        raise UserError(f"{path}: not a kinject index ({missing[0]} is missing)")
    return _read_meta(path / "meta.json")


def _read_meta(path: Path) -> dict[str, Any]:
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise UserError(f"{path}: not a kinject index of format {INDEX_FORMAT}")
    try:
        emb = meta["embedder"]
        ok = (isinstance(emb["fingerprint"], str) and isinstance(emb["dim"], int) and isinstance(meta["chunks"], int)
              and isinstance(meta["sha256"], dict) and set(meta["sha256"]) == {"index.faiss", "chunks.jsonl"}
              and meta["index"]["type"] in ("flat", "ivf-flat", "hnsw"))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"{path}: corrupted (fields missing or of the wrong type)")
    return meta
