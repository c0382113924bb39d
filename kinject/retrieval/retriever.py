"""The retriever the ``rag`` methods use: config, index building/opening, and per-probe contexts.

A :class:`RetrievalContext` answers the evaluation's question "what text goes before this
probe?" with the top ``k`` chunks after "Context: ", the best one last (nearest the question), and
records which chunks came back, at which rank the chunk holding the gold fact was found
(``gold_rank``; retrieval recall@k), and whether any retrieved chunk states a gold answer at all
(``answer_retrieved``, which also counts the same fact stated in another document).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kinject.artifacts import directory_fingerprint
from kinject.checks import Check, at_least, check_section, one_of
from kinject.data.schema import Corpus, Document, Probe
from kinject.errors import UserError
from kinject.evaluation.metrics import contains_run, tokens
from kinject.evaluation.runner import Context
from kinject.retrieval.chunking import CHUNKINGS, Chunk, check_chunking, chunk_documents, split_long_chunks
from kinject.retrieval.embedder import BACKENDS, DEFAULT_EMBEDDER, Embedder, resolve_embedder_path, vector_fingerprint
from kinject.retrieval.index import ANN_TYPES, Hit, PassageIndex, read_index_meta
from kinject.retrieval.lexical import LexicalIndex, reciprocal_rank_fusion
from kinject.retrieval.rerank import PairScorer, open_reranker, resolve_reranker_path

MODES = ("dense", "bm25", "hybrid")


@dataclass
class RetrievalConfig:
    """Retrieval for ``rag`` and ``<method>+rag``.

    embedder: ``all-minilm-l6-v2`` (shipped), a sentence-transformers directory or a hub id;
    ``query_prefix``/``passage_prefix`` for models that need them (E5: "query: "/"passage: "); left
    empty, the embedder's own named prompts where its sentence-transformers config defines them.
    k: passages placed before each question. chunking: document | paragraph | sentence | tokens
    (``chunk_tokens`` embedder tokens per window, ``chunk_overlap`` shared between windows).
    ann_threshold: at this many chunks or more the index is approximate instead of exact: ``ann``
    ``hnsw`` (an HNSW graph, ``hnsw_m`` neighbours a node, ``ef_search`` candidates a query; the
    default, measured faster and closer to exact than IVF at 100k passages) or ``ivf`` (IVF-flat,
    ``nprobe`` lists searched). index: a directory from ``kinject index build`` to use instead of indexing
    the corpus. cache: reuse embeddings stored under the kinject cache (keyed by content hash).
    mode: ``dense`` (the embedder and FAISS), ``bm25`` (lexical, :mod:`kinject.retrieval.lexical`;
    nothing is embedded) or ``hybrid`` (both rankings, each ``candidates`` deep, fused by reciprocal
    rank fusion with constant ``rrf_constant``). rerank: a cross-encoder directory (or cached hub
    id), or ``lm:<model>`` (query likelihood under a causal LM; :mod:`kinject.retrieval.rerank`),
    that reorders the first stage's ``candidates`` best chunks and keeps ``k`` (None: no
    reranking). backend: ``torch`` (sentence-transformers),
    ``onnx`` (the same weights exported once and run by onnxruntime; the same vectors) or
    ``onnx-int8`` (that export with int8 weights; other vectors, so other caches and indexes).
    """

    embedder: str = DEFAULT_EMBEDDER
    query_prefix: str = ""
    passage_prefix: str = ""
    k: int = 3
    chunking: str = "sentence"
    chunk_tokens: int = 128
    chunk_overlap: int = 32
    ann_threshold: int = 250_000
    ann: str = "hnsw"
    nprobe: int = 128
    hnsw_m: int = 32
    ef_search: int = 64
    batch_size: int = 64
    index: str | None = None
    cache: bool = True
    progress: bool = True
    mode: str = "dense"
    candidates: int = 20
    rrf_constant: int = 60
    rerank: str | None = None
    backend: str = "torch"

    CHECKS: ClassVar[dict[str, Check]] = {
        "backend": one_of(*BACKENDS), "mode": one_of(*MODES), "candidates": at_least(1),
        "rrf_constant": at_least(0),
        "k": at_least(1), "chunking": one_of(*CHUNKINGS), "chunk_tokens": at_least(1), "chunk_overlap": at_least(0),
        "ann_threshold": at_least(1), "ann": one_of(*ANN_TYPES), "nprobe": at_least(1), "hnsw_m": at_least(2),
        "ef_search": at_least(1), "batch_size": at_least(1)}



def check_retrieval_config(cfg: RetrievalConfig) -> None:
    """Raise UserError for a value no retriever can use (before any work starts)."""
    check_section(cfg, "retrieval")
    check_chunking(cfg.chunking, cfg.chunk_tokens, cfg.chunk_overlap)
    resolve_embedder_path(cfg.embedder)
    if cfg.rerank is not None:
        resolve_reranker_path(cfg.rerank)
    if cfg.index is not None:
        path = Path(cfg.index).expanduser()
        built_by = read_index_meta(path)["embedder"]
        fingerprint = vector_fingerprint(directory_fingerprint(resolve_embedder_path(cfg.embedder)), cfg.backend)
        if built_by["fingerprint"] != fingerprint:
            raise UserError(f"retrieval.index: {path} was built with embedder {built_by['name']!r}, not "
                            f"retrieval.embedder={cfg.embedder!r} with retrieval.backend={cfg.backend} (other "
                            "weights or vectors); rebuild it or set the embedder and backend")


def load_embedder(cfg: RetrievalConfig) -> Embedder:
    from kinject.models import cache_dir

    return Embedder(cfg.embedder, cfg.query_prefix, cfg.passage_prefix,
                    cache_dir() / "embeddings" if cfg.cache else None, cfg.backend)


def corpus_chunks(documents: Sequence[Document], cfg: RetrievalConfig, embedder: Embedder
                  ) -> tuple[list[Chunk], dict[str, Any]]:
    """``documents`` cut as ``cfg.chunking`` says, chunks too long for the embedder split to its
    window; and the chunking's record for the index's meta."""
    if cfg.chunking == "tokens" and cfg.chunk_tokens > embedder.max_tokens:
        raise UserError(f"retrieval.chunk_tokens={cfg.chunk_tokens} exceeds the embedder's limit of "
                        f"{embedder.max_tokens} tokens")
    chunks = chunk_documents(documents, cfg.chunking, cfg.chunk_tokens, cfg.chunk_overlap, embedder.tokenizer)
    chunks, split = split_long_chunks(chunks, documents, embedder.tokenizer, embedder.passage_window())
    chunking: dict[str, Any] = {"by": cfg.chunking, "split_to_window": split}
    if cfg.chunking == "tokens":
        chunking |= {"tokens": cfg.chunk_tokens, "overlap": cfg.chunk_overlap}
    return chunks, chunking


def build_index(documents: Sequence[Document], cfg: RetrievalConfig, embedder: Embedder) -> PassageIndex:
    """Chunk ``documents``, embed the chunks (cached), and index them."""
    chunks, chunking = corpus_chunks(documents, cfg, embedder)
    vectors = embedder.encode_passages([c.text for c in chunks], cfg.batch_size, cfg.progress)
    return PassageIndex.build(chunks, vectors, embedder=embedder.describe(), chunking=chunking,
                              ann_threshold=cfg.ann_threshold, ann=cfg.ann, nprobe=cfg.nprobe, hnsw_m=cfg.hnsw_m,
                              ef_search=cfg.ef_search)


def extended_index(earlier: Path, documents: Sequence[Document], cfg: RetrievalConfig, embedder: Embedder
                   ) -> PassageIndex | None:
    """The index saved at ``earlier`` with the chunks of ``documents`` it does not hold appended
    (only those are embedded); None, so that the caller builds afresh, when there is no index there,
    it holds a document not in ``documents`` or was built with other settings (embedder, chunking),
    or the grown index would cross ``retrieval.ann_threshold`` (an exact index then becomes ANN)."""
    if not (earlier / "meta.json").is_file():
        return None
    index = PassageIndex.load(earlier, expect=embedder.describe())
    ids = {d.id for d in documents}
    held = {c.doc_id for c in index.chunks}
    if not held <= ids:
        return None
    chunks, chunking = corpus_chunks([d for d in documents if d.id not in held], cfg, embedder)
    same = {k: v for k, v in chunking.items() if k != "split_to_window"} == {
        k: v for k, v in index.meta["chunking"].items() if k != "split_to_window"}
    exact = index.meta["index"]["type"] == "flat"
    if not same or (exact and len(index.chunks) + len(chunks) >= cfg.ann_threshold):
        return None
    index.extend(chunks, embedder.encode_passages([c.text for c in chunks], cfg.batch_size, cfg.progress))
    index.meta["chunking"]["split_to_window"] += chunking["split_to_window"]
    return index


class Retriever:
    """Questions in, ranked chunks out: dense (``embedder`` and ``index``), BM25 (``lexical``), or
    both fused (``mode``; see :class:`RetrievalConfig`), then optionally reranked by a cross-encoder
    over the first stage's ``candidates`` best. ``chunking`` is the chunks' record."""

    def __init__(self, embedder: Embedder, index: PassageIndex | None, lexical: LexicalIndex | None = None,
                 mode: str = "dense", candidates: int = 20, rrf_constant: int = 60,
                 chunking: dict[str, Any] | None = None,
                 reranker: PairScorer | None = None) -> None:
        if (index is None and mode != "bm25") or (lexical is None and mode != "dense"):
            raise ValueError(f"retrieval mode {mode!r} needs {'a dense' if index is None else 'a BM25'} index")
        self.embedder = embedder
        self.index = index
        self.lexical = lexical
        self.mode = mode
        self.candidates = candidates
        self.rrf_constant = rrf_constant
        self.reranker = reranker
        self.chunking = chunking if chunking is not None else index.meta["chunking"]
        self.chunks = index.chunks if index is not None else lexical.chunks

    def _dense(self, questions: Sequence[str], k: int, batch_size: int) -> list[list[Hit]]:
        return self.index.search(self.embedder.encode_queries(questions, batch_size), k)

    def search(self, questions: Sequence[str], k: int, batch_size: int = 64) -> list[list[Hit]]:
        """Up to ``k`` hits per question, best first (``Hit.score``: cosine, BM25 score, fused sum
        or the reranker's score)."""
        if self.reranker is None:
            return self._first_stage(questions, k, batch_size)
        first = self._first_stage(questions, max(k, self.candidates), batch_size)
        return self.reranker.rerank(questions, first, k)

    def _first_stage(self, questions: Sequence[str], k: int, batch_size: int) -> list[list[Hit]]:
        if self.mode == "dense":
            return self._dense(questions, k, batch_size)
        if self.mode == "bm25":
            return self.lexical.search(questions, k)
        depth = max(k, self.candidates)
        dense, lexical = self._dense(questions, depth, batch_size), self.lexical.search(questions, depth)
        return [reciprocal_rank_fusion([d, w], k, self.rrf_constant) for d, w in zip(dense, lexical)]


def open_retriever(documents: Sequence[Document], cfg: RetrievalConfig, out: Path | None,
                   earlier: Path | None = None) -> tuple[Retriever, float]:
    """The retriever for a run: ``cfg.index`` if given, else an index of ``documents`` (saved to
    ``out`` when given; in ``bm25`` mode nothing is embedded and nothing saved): the index saved at
    ``earlier`` with the documents it lacks appended (a stream's update), where there is one of
    some of ``documents`` and :func:`extended_index` can extend it, else a fresh one. Returns the
    retriever and the seconds spent building/opening it."""
    start = time.perf_counter()
    embedder = load_embedder(cfg)
    index, lexical, chunking = None, None, None
    if cfg.index is not None:
        index = PassageIndex.load(Path(cfg.index).expanduser(), expect=embedder.describe())
        chunking = index.meta["chunking"]
    elif cfg.mode == "bm25":
        chunks, chunking = corpus_chunks(documents, cfg, embedder)
    else:
        index = extended_index(earlier, documents, cfg, embedder) if earlier is not None else None
        if index is None:
            index = build_index(documents, cfg, embedder)
        if out is not None:
            index.save(out, replace=True)
    if cfg.mode != "dense":
        lexical = LexicalIndex(index.chunks if index is not None else chunks)
    reranker = open_reranker(cfg.rerank) if cfg.rerank is not None else None
    retriever = Retriever(embedder, index if cfg.mode != "bm25" else None, lexical, cfg.mode, cfg.candidates,
                          cfg.rrf_constant, chunking, reranker)
    return retriever, time.perf_counter() - start


def _contains(chunk: Chunk, doc_id: str, start: int, end: int) -> bool:
    return chunk.doc_id == doc_id and chunk.start <= start and chunk.end >= end


def gold_spans(corpus: Corpus) -> dict[str, tuple[str, int, int]]:
    """Probe id -> (doc id, start, end) of the answer where the probe's fact is stated.

    The fact's sentence is located in its document and the answer inside it; without a fact, the
    first occurrence of any gold answer in the probe's document. Probes without a document, or
    whose answer cannot be found, have no gold span (they count in no recall figure).
    """
    docs = {d.id: d.text for d in corpus.documents}
    facts = {f.id: f for f in corpus.facts}
    spans = {}
    for probe in corpus.probes:
        text = docs.get(probe.doc_id)
        if text is None:
            continue
        fact = facts.get(probe.fact_id)
        if fact is not None and (at := text.find(fact.text)) >= 0:
            offset = fact.answer_start if fact.answer_start >= 0 else fact.text.rfind(fact.answer)
            if offset >= 0:
                spans[probe.id] = (probe.doc_id, at + offset, at + offset + len(fact.answer))
                continue
        lowered = text.lower()
        for answer in probe.answers:
            found = lowered.find(answer.lower())
            if found >= 0:
                spans[probe.id] = (probe.doc_id, found, found + len(answer))
                break
    return spans


class RetrievalContext:
    """The evaluation's context function: the top ``k`` chunks per probe, and the gold's rank."""

    def __init__(self, retriever: Retriever, corpus: Corpus, k: int, batch_size: int = 64) -> None:
        self.retriever = retriever
        self.k = k
        self.batch_size = batch_size
        self.gold = gold_spans(corpus)

    def __call__(self, probes: Sequence[Probe]) -> list[Context]:
        hits = self.retriever.search([p.question for p in probes], self.k, self.batch_size)
        out = []
        for probe, ranked in zip(probes, hits):
            record: dict[str, Any] = {"passages": [{"id": h.chunk.id, "score": round(h.score, 4)} for h in ranked]}
            if probe.id in self.gold:
                record["gold_rank"] = next((h.rank for h in ranked if _contains(h.chunk, *self.gold[probe.id])), None)
            if probe.doc_id:  # a probe about the corpus: does any passage state an answer, from any document?
                record["answer_retrieved"] = any(states_answer(h.chunk.text, probe.answers) for h in ranked)
            out.append(Context(format_passages(ranked), record))
        return out


def states_answer(passage: str, answers: Sequence[str]) -> bool:
    """Whether ``passage`` contains one of ``answers`` as a run of normalised tokens."""
    text = tokens(passage)
    return any(contains_run(text, tokens(a, drop_articles=True)) for a in answers)


def format_context(texts: Sequence[str]) -> str:
    """Texts as a method places them before a question ("Context: " and the texts, in order): the
    form of ``rag``, ``oracle`` and distill's teacher."""
    return "Context: " + " ".join(texts)


def placed_texts(hits: Sequence[Hit]) -> list[str]:
    """The passages' texts in the order they are placed before a question: best last.

    Chosen on a development world (seed 1000, k=3, QA accuracy): best last .552, best first .500,
    one passage per line without the label .469.
    """
    return [h.chunk.text for h in reversed(hits)]


def format_passages(hits: Sequence[Hit]) -> str:
    """The passages as placed before a question: "Context: " and :func:`placed_texts`."""
    return format_context(placed_texts(hits))


def describe(cfg: RetrievalConfig, retriever: Retriever) -> dict[str, Any]:
    """What a run records about its retriever."""
    record = {"k": cfg.k, "mode": retriever.mode, "chunking": retriever.chunking,
              "chunks": len(retriever.chunks), "index_dir": cfg.index}
    if retriever.index is not None:
        record |= {"embedder": retriever.embedder.describe(), "index": retriever.index.meta["index"]}
    if retriever.mode == "hybrid":
        record |= {"rrf_constant": retriever.rrf_constant}
    if retriever.mode == "hybrid" or retriever.reranker is not None:
        record |= {"candidates": retriever.candidates}
    if retriever.reranker is not None:
        record |= {"rerank": retriever.reranker.describe()}
    return record

