"""Retrieval speed at scale: build an index of generated passages, then time single queries.

    .venv/bin/python benchmarks/index_speed.py [--passages 100000] [--queries 200] [--k 5] [--nprobe N]
        [--ann hnsw|ivf] [--ann-threshold 50000] [--ef-search 64] [--hnsw-m 32]
        [--backend torch|onnx|onnx-int8] [--side-by-side 2000]

Passages are generated articles about invented entities (two fact sentences each, built from the
built-in benchmark's templates), so the corpus is as large as asked and no download is needed.
The build runs kinject's own parts, timed one by one: chunking, the shipped all-MiniLM-L6-v2
embedder with an empty embedding cache, FAISS (from ``--ann-threshold`` passages on the ``--ann``
index, HNSW or IVF-flat, as ``retrieval.ann``); the index is then saved and loaded back. Query
latency is one question at a time (embedding + search), as an interactive user sees it; p50/p95
over ``--queries`` questions. The search alone is then timed for an exact flat index, for IVF at
several nprobe values and for an HNSW graph (``--hnsw-m`` neighbours) at efSearch 16-128, both
built again over the same vectors (build times printed), each with the share of the exact top-k it
finds, measured in the same run. ``--backend`` is the embedder's
engine for the build and the queries (``retrieval.backend``); the side-by-side section then embeds
the first ``--side-by-side`` passages and times the same single queries with every engine (torch,
onnx, onnx-int8), one after the other in the same run, and prints their ratios to torch and the
vectors' agreement with torch's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from kinject.data.builtin.templates import PRODUCTS, PROFESSIONS, RELATIONS, fill
from kinject.data.schema import Document
from kinject.retrieval.chunking import chunk_documents
from kinject.retrieval.embedder import BACKENDS, Embedder
from kinject.retrieval.index import ANN_TYPES, PassageIndex, import_faiss
from kinject.retrieval.retriever import RetrievalConfig, Retriever

SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in ("a", "e", "i", "o", "u", "ae", "ou")]


def invented(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def value(rng: random.Random, kind: str) -> str:
    if kind in ("birth_year", "founded_year"):
        return str(rng.randrange(1850, 2016))
    if kind == "profession":
        return rng.choice(PROFESSIONS)
    if kind == "product":
        return rng.choice(PRODUCTS)
    if kind == "organisation":
        return f"{invented(rng, 2)} Works"
    if kind == "founder":
        return f"{invented(rng, 2)} {invented(rng, 3)}"
    return invented(rng, 3)  # city


def generate(n: int, seed: int) -> tuple[list[Document], list[tuple[str, str]]]:
    """``n`` two-sentence articles and, per article, one (question, doc id) about its first fact."""
    rng = random.Random(seed)
    docs, questions = [], []
    for i in range(n):
        kind = rng.choice(("person", "organisation"))
        subject = f"{invented(rng, 2)} {invented(rng, 3)}" if kind == "person" else f"{invented(rng, 3)} Holdings"
        rels = rng.sample([r for r in RELATIONS if r.kind == kind], 2)
        text = " ".join(fill(rng.choice(r.documents), subject, value(rng, r.value)) for r in rels)
        docs.append(Document(f"doc{i}", text))
        questions.append((fill(rng.choice(rels[0].questions), subject, ""), f"doc{i}"))
    return docs, questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--ann-threshold", type=int, default=50_000,
                    help="an approximate index from this many passages on (kinject's default is higher; this "
                         "exercises it at 100k)")
    ap.add_argument("--ann", choices=ANN_TYPES, default=RetrievalConfig().ann,
                    help="retrieval.ann: the approximate index kinject builds and queries")
    ap.add_argument("--ef-search", type=int, default=RetrievalConfig().ef_search)
    ap.add_argument("--nprobe", type=int, default=RetrievalConfig().nprobe)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=BACKENDS, default="torch")
    ap.add_argument("--hnsw-m", type=int, default=RetrievalConfig().hnsw_m, help="HNSW neighbours per node")
    ap.add_argument("--side-by-side", type=int, default=2000, help="passages embedded by both engines (0: skip)")
    args = ap.parse_args()

    docs, questions = generate(args.passages, args.seed)
    cfg = RetrievalConfig(chunking="document", ann_threshold=args.ann_threshold, ann=args.ann, nprobe=args.nprobe,
                          hnsw_m=args.hnsw_m, ef_search=args.ef_search, progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        embedder = Embedder(cfg.embedder, cache_dir=Path(tmp) / "cache", backend=args.backend)  # empty cache
        tokens = sum(len(ids) for ids in embedder.tokenizer([d.text for d in docs[:2000]])["input_ids"]) / min(
            2000, len(docs))
        start = time.perf_counter()
        chunks = chunk_documents(docs, cfg.chunking)
        chunk_s = time.perf_counter() - start
        vectors = embedder.encode_passages([c.text for c in chunks], cfg.batch_size, progress=True)
        embed_s = time.perf_counter() - start - chunk_s
        index = PassageIndex.build(chunks, vectors, embedder=embedder.describe(), chunking={"by": cfg.chunking},
                                   ann_threshold=cfg.ann_threshold, ann=cfg.ann, nprobe=cfg.nprobe,
                                   hnsw_m=cfg.hnsw_m, ef_search=cfg.ef_search)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        index.save(Path(tmp) / "index")
        loaded = PassageIndex.load(Path(tmp) / "index", expect=embedder.describe())
        save_load_s = time.perf_counter() - start

        retriever = Retriever(embedder, loaded)
        rng = random.Random(args.seed + 1)
        sample = rng.sample(questions, min(args.queries, len(questions)))
        retriever.search([sample[0][0]], args.k)  # warm-up
        latencies, top1 = [], 0
        for question, doc_id in sample:
            t = time.perf_counter()
            hits = retriever.search([question], args.k)[0]
            latencies.append(time.perf_counter() - t)
            top1 += bool(hits) and hits[0].chunk.doc_id == doc_id

        qvecs = embedder.encode_queries([q for q, _ in sample])
        flat = import_faiss().IndexFlatIP(embedder.dim)
        flat.add(vectors)
        exact = flat.search(qvecs, args.k)[1]
        sweep, built = [("flat (exact)", flat, None)], {}
        for ann in ANN_TYPES:  # both approximate types over the same vectors, each with its build time
            start = time.perf_counter()
            other = PassageIndex.build(chunks, vectors, embedder=embedder.describe(), chunking={"by": cfg.chunking},
                                       ann_threshold=1, ann=ann, nprobe=cfg.nprobe, hnsw_m=cfg.hnsw_m).index
            built[ann] = time.perf_counter() - start
            sweep += ([(f"ivf nprobe {n}", other, ("nprobe", n)) for n in (8, 16, 32, 64, 128) if n <= other.nlist]
                      if ann == "ivf" else
                      [(f"hnsw M{cfg.hnsw_m} ef {n}", other, ("efSearch", n)) for n in (16, 32, 64, 128)])
        rows = []
        for label, idx, setting in sweep:
            if setting is not None:
                if setting[0] == "efSearch":
                    idx.hnsw.efSearch = setting[1]
                else:
                    idx.nprobe = setting[1]
            times = []
            for q in qvecs:
                t = time.perf_counter()
                idx.search(q[None], args.k)
                times.append(time.perf_counter() - t)
            approx = idx.search(qvecs, args.k)[1]
            overlap = statistics.mean(len(set(a) & set(e)) / args.k for a, e in zip(approx, exact))
            rows.append((label, statistics.median(times) * 1000, overlap))
        engines = side_by_side([d.text for d in docs[: args.side_by_side]], [q for q, _ in sample]) \
            if args.side_by_side else []

    ms = sorted(x * 1000 for x in latencies)
    pct = lambda p: ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]  # noqa: E731
    kind = index.meta["index"]
    print(f"\n== index speed (seed {args.seed}) ==")
    print(f"passages            {len(docs)} generated articles, {tokens:.1f} embedder tokens each on average")
    settings = {k: v for k, v in kind.items() if k != "type"}
    print(f"index               {kind['type']}" + "".join(f", {k} {v}" for k, v in settings.items()))
    print(f"build               {build_s:.1f} s = {len(docs) / build_s:.0f} passages/s "
          "(chunk + embed + index, empty cache)")
    print(f"  of which          chunk {chunk_s:.1f} s, embed {embed_s:.1f} s ({len(docs) / embed_s:.0f} passages/s), "
          f"index {build_s - chunk_s - embed_s:.1f} s")
    print(f"save + load         {save_load_s:.1f} s (sha256-checked)")
    print(f"query latency       p50 {pct(50):.1f} ms, p95 {pct(95):.1f} ms over {len(ms)} single queries, k={args.k} "
          "(embed + search)")
    print(f"search only, p50 over the same {len(qvecs)} queries, and share of the exact top-{args.k} found:")
    print("  (over the same vectors, built in " + ", ".join(f"{a} {t:.1f} s" for a, t in built.items()) + ")")
    for label, p50, overlap in rows:
        print(f"  {label:16s}  {p50:7.2f} ms   {overlap:.3f}")
    print(f"top-1 = source doc  {top1 / len(sample):.3f} of queries")
    print(f"index memory        {vectors.nbytes / 2**20:.0f} MiB of vectors here = "
          f"{vectors.nbytes / len(vectors) * 1e6 / 2**30:.2f} GiB per million passages ({embedder.dim}-d float32)")
    if engines:
        _, t_ps, t_ms, _ = engines[0]
        print(f"engines side by side ({args.side_by_side} passages, {len(sample)} single queries, same run):")
        for name, ps, p50, agree in engines:
            print(f"  {name:9s}  embed {ps:6.0f} passages/s (x{ps / t_ps:.2f})   query embedding p50 {p50:6.2f} ms "
                  f"(x{p50 / t_ms:.2f})   cosine to torch's vectors min {agree:.6f}")


def side_by_side(passages: list[str], queries: list[str]) -> list[tuple[str, float, float, float]]:
    """(engine, passages/s, p50 ms of one query's embedding, min cosine to torch's vectors) for
    every engine, torch first, measured one after the other."""
    out, reference = [], None
    for backend in BACKENDS:
        embedder = Embedder(backend=backend)
        embedder.encode_queries(queries[:1])  # warm-up
        start = time.perf_counter()
        vectors = embedder.encode_passages(passages)
        rate = len(passages) / (time.perf_counter() - start)
        times = []
        for q in queries:
            t = time.perf_counter()
            embedder.encode_queries([q])
            times.append(time.perf_counter() - t)
        reference = vectors if reference is None else reference
        out.append((backend, rate, statistics.median(times) * 1000, float((vectors * reference).sum(1).min())))
    return out


if __name__ == "__main__":
    main()
