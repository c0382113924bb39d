"""Retrieval on the real shipped embedder (all-MiniLM-L6-v2) and real FAISS: chunking, the
embedding cache, the index on disk and its errors, recall@k, and the rag compositions."""

import itertools
import json

import numpy as np
import pytest

from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.data.schema import Corpus, Document, Fact, Probe
from kinject.errors import UserError
from kinject.methods.registry import get_method, resolve_methods
from kinject.retrieval.chunking import chunk_documents
from kinject.retrieval.embedder import Embedder
from kinject.retrieval.index import PassageIndex
from kinject.retrieval.retriever import (
    RetrievalConfig,
    RetrievalContext,
    Retriever,
    build_index,
    check_retrieval_config,
    extended_index,
    format_passages,
    gold_spans,
)

TEXT = ("Dr. A. Marlow founded Quillon Works in 1874. It sells tide clocks! Where? In Varnholt, "
        "near the coast.\n\nThe second paragraph has e.g. an example. It ends here.")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return Embedder(cache_dir=tmp_path_factory.mktemp("emb-cache"))


@pytest.fixture(scope="module")
def world():
    return build_world(BuiltinConfig(test_people=3, test_orgs=2, train_people=2, train_orgs=1), 5)


@pytest.mark.parametrize("by", ["document", "paragraph", "sentence", "tokens"])
def test_chunks_keep_their_document_and_offsets(by, embedder):
    doc = Document("d1", TEXT)
    chunks = chunk_documents([doc, Document("d2", "One more.")], by, size=8, overlap=3, tokenizer=embedder.tokenizer)
    assert chunks and {c.doc_id for c in chunks} == {"d1", "d2"}
    for c in chunks:
        source = TEXT if c.doc_id == "d1" else "One more."
        assert source[c.start:c.end] == c.text and c.text == c.text.strip()
    assert len({c.id for c in chunks}) == len(chunks)


def test_sentence_and_paragraph_boundaries():
    sentences = [c.text for c in chunk_documents([Document("d", TEXT)], "sentence")]
    assert sentences == ["Dr. A. Marlow founded Quillon Works in 1874.", "It sells tide clocks!", "Where?",
                         "In Varnholt, near the coast.", "The second paragraph has e.g. an example.", "It ends here."]
    assert len(chunk_documents([Document("d", TEXT)], "paragraph")) == 2


def test_token_windows_overlap_and_cover_the_document(embedder):
    doc = Document("d", " ".join(f"word{i}" for i in range(60)))
    chunks = chunk_documents([doc], "tokens", size=16, overlap=4, tokenizer=embedder.tokenizer)
    tok = embedder.tokenizer
    assert all(len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 16 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))  # consecutive windows share text


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("chunking", "words", "retrieval.chunking"), ("k", 0, "retrieval.k"),
    ("chunk_overlap", 128, "retrieval.chunk_overlap"), ("index", "/nonexistent/ix", "no such index directory")])
def test_bad_retrieval_config_names_the_key(key, value, needle):
    cfg = RetrievalConfig(chunking="tokens")
    setattr(cfg, key, value)
    with pytest.raises(UserError, match=needle):
        check_retrieval_config(cfg)


def test_embeddings_are_unit_vectors_and_cached_by_content(embedder, monkeypatch):
    texts = ["Quillon Works sells tide clocks.", "The sky over Varnholt is grey."]
    first = embedder.encode_passages(texts)
    assert first.shape == (2, embedder.dim) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    encoded = []
    real = embedder._encode
    monkeypatch.setattr(embedder, "_encode", lambda t, *a: encoded.extend(t) or real(t, *a))
    again = embedder.encode_passages([*texts, "A new sentence."])
    assert encoded == ["A new sentence."]  # the two known texts came from the cache
    assert np.allclose(again[:2], first, atol=1e-6)


def test_the_right_passage_ranks_first_and_survives_a_round_trip(embedder, tmp_path):
    docs = [Document("a", "Quillon Works was founded in 1874 by Ada Marlow."),
            Document("b", "The Varnholt lighthouse is painted red and white."),
            Document("c", "Tide clocks show the state of the tide rather than the hour.")]
    index = build_index(docs, RetrievalConfig(progress=False), embedder)
    retriever = Retriever(embedder, index)
    hits = retriever.search(["Who founded Quillon Works?", "What colour is the lighthouse?"], k=2)
    assert [h[0].chunk.doc_id for h in hits] == ["a", "b"] and hits[0][0].score > hits[0][1].score
    index.save(tmp_path / "ix")
    with pytest.raises(UserError, match="already exists"):
        index.save(tmp_path / "ix")
    loaded = PassageIndex.load(tmp_path / "ix", expect=embedder.describe())
    again = Retriever(embedder, loaded).search(["Who founded Quillon Works?"], k=3)[0]
    assert [(h.chunk, round(h.score, 5)) for h in again] == [(h.chunk, round(h.score, 5))
                                                             for h in retriever.search(["Who founded Quillon Works?"],
                                                                                       k=3)[0]]


def test_a_stream_appends_the_new_documents_to_the_saved_index(embedder, tmp_path, monkeypatch):
    docs = [Document("a", "Quillon Works was founded in 1874 by Ada Marlow. It sells tide clocks."),
            Document("b", "The Varnholt lighthouse is painted red and white."),
            Document("c", "Tide clocks show the state of the tide rather than the hour. Sailors use them.")]
    cfg = RetrievalConfig(progress=False)
    build_index(docs[:2], cfg, embedder).save(tmp_path / "update1")
    encoded = []
    encode = embedder.encode_passages
    monkeypatch.setattr(embedder, "encode_passages", lambda texts, *a: encoded.extend(texts) or encode(texts, *a))
    grown = extended_index(tmp_path / "update1", docs, cfg, embedder)
    assert encoded == ["Tide clocks show the state of the tide rather than the hour.", "Sailors use them."]
    fresh = build_index(docs, cfg, embedder)
    assert grown.chunks == fresh.chunks and grown.meta["chunks"] == 5 and grown.meta["documents"] == 3
    questions = embedder.encode_queries(["Who founded Quillon Works?", "What do sailors use?"], 2)
    assert [[(h.chunk.id, round(h.score, 5)) for h in row] for row in grown.search(questions, 5)] == [
        [(h.chunk.id, round(h.score, 5)) for h in row] for row in fresh.search(questions, 5)]
    # built afresh (None) when the saved index holds a document that is gone, was cut another way,
    # or is not there at all
    assert extended_index(tmp_path / "update1", docs[1:], cfg, embedder) is None
    assert extended_index(tmp_path / "update1", docs, RetrievalConfig(chunking="paragraph"), embedder) is None
    assert extended_index(tmp_path / "nothing", docs, cfg, embedder) is None


@pytest.mark.parametrize(("ann", "kind", "setting"), [("ivf", "ivf-flat", ("nprobe", 8)),
                                                     ("hnsw", "hnsw", ("ef_search", 40))])
def test_large_indexes_turn_approximate_and_still_find_each_vector(tmp_path, ann, kind, setting):
    from kinject.retrieval.chunking import Chunk

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((2000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [Chunk(f"d{i}#0", f"d{i}", f"text {i}", 0, 6) for i in range(len(vecs))]
    emb = {"name": "x", "path": "x", "fingerprint": "f", "dim": 32, "query_prefix": "", "passage_prefix": ""}
    small = PassageIndex.build(chunks[:999], vecs[:999], embedder=emb, chunking={"by": "document"},
                               ann_threshold=1000, ann=ann)
    assert small.meta["index"]["type"] == "flat"  # below the threshold: exact
    index = PassageIndex.build(chunks, vecs, embedder=emb, chunking={"by": "document"}, ann_threshold=1000, ann=ann,
                               nprobe=8, ef_search=40)
    assert index.meta["index"]["type"] == kind and index.meta["index"][setting[0]] == setting[1]
    top = [hits[0].chunk.doc_id for hits in index.search(vecs[:200], 1)]
    assert sum(t == f"d{i}" for i, t in enumerate(top)) >= 190  # a vector finds itself despite the approximation
    index.save(tmp_path / ann)
    loaded = PassageIndex.load(tmp_path / ann).index
    assert (loaded.nprobe if ann == "ivf" else loaded.hnsw.efSearch) == setting[1]


@pytest.fixture
def saved_index(embedder, tmp_path):
    index = build_index([Document("a", "Quillon Works sells tide clocks.")], RetrievalConfig(progress=False), embedder)
    index.save(tmp_path / "ix")
    return tmp_path / "ix"


def _damage(path, how):
    if how == "missing-dir":
        return path.parent / "nope", "no such index directory"
    if how == "no-meta":
        (path / "meta.json").unlink()
        return path, r"not a kinject index \(meta.json is missing\)"
    if how == "bad-meta":
        (path / "meta.json").write_text("{not json")
        return path, "meta.json:1: malformed JSON"
    if how == "flipped-bytes":
        data = bytearray((path / "index.faiss").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (path / "index.faiss").write_bytes(bytes(data))
        return path, "index.faiss: corrupted"
    meta = json.loads((path / "meta.json").read_text())  # other-embedder
    meta["embedder"]["fingerprint"] = "0123456789abcdef"
    (path / "meta.json").write_text(json.dumps(meta))
    return path, "built with embedder"


@pytest.mark.parametrize("how", ["missing-dir", "no-meta", "bad-meta", "flipped-bytes", "other-embedder"])
def test_a_bad_index_directory_is_one_clear_error(saved_index, embedder, how, capsys):
    from kinject.cli import main

    path, needle = _damage(saved_index, how)
    with pytest.raises(UserError, match=needle):
        PassageIndex.load(path, expect=embedder.describe())
    assert main(["index", "query", str(path), "Who sells tide clocks?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinject: error: ") and len(err.strip().splitlines()) == 1


def test_gold_spans_point_at_the_answer_in_its_fact_sentence(world):
    spans = gold_spans(world)
    docs = {d.id: d.text for d in world.documents}
    qa = world.probes_of("qa")
    assert {p.id for p in qa} <= set(spans)
    for p in qa:
        doc_id, start, end = spans[p.id]
        assert doc_id == p.doc_id and docs[doc_id][start:end] == p.answers[0]
    bare = Corpus("c", [Document("d", "Nothing to see. The code is Zed-42.")],
                  [Probe("p", "qa", "What is the code?", ["zed-42"], doc_id="d"),
                   Probe("q", "qa", "What else?", ["absent"], doc_id="d"),
                   Probe("r", "qa", "No document?", ["x"])],
                  facts=[Fact("f", "d", "not in the document", "x")])
    assert gold_spans(bare) == {"p": ("d", 28, 34)}


def test_retrieval_context_reports_the_gold_rank(world, embedder):
    index = build_index(world.documents, RetrievalConfig(progress=False), embedder)
    context = RetrievalContext(Retriever(embedder, index), world, k=3)
    qa = world.probes_of("qa")
    out = context(qa)
    gold = gold_spans(world)
    for probe, ctx in zip(qa, out):
        chunk_by_id = {c.id: c for c in index.chunks}
        retrieved = [chunk_by_id[p["id"]] for p in ctx.record["passages"]]
        holding = [i + 1 for i, c in enumerate(retrieved)
                   if c.doc_id == gold[probe.id][0] and c.start <= gold[probe.id][1] and c.end >= gold[probe.id][2]]
        assert ctx.record["gold_rank"] == (holding[0] if holding else None)
        assert ctx.text.startswith("Context: ") and retrieved[0].text in ctx.text
        assert ctx.text.endswith(retrieved[0].text)  # the best passage sits nearest the question
    assert sum(c.record["gold_rank"] is not None for c in out) / len(out) > 0.5


def test_format_puts_the_best_passage_last():
    from kinject.retrieval.chunking import Chunk
    from kinject.retrieval.index import Hit

    hits = [Hit(Chunk(f"c{i}", "d", t, 0, 1), 1.0 - i / 10, i + 1) for i, t in enumerate(["best", "second"])]
    assert format_passages(hits) == "Context: second best"


def test_compositions_resolve_without_registering_each_one():
    spec = get_method("ft-para+rag")
    assert spec.inner == "ft-para" and spec.wrap is not None and spec.check is not None
    assert get_method("rag").inner == "base"
    assert "rag" in resolve_methods(["all"]) and "ft+rag" not in resolve_methods(["all"])
    with pytest.raises(UserError, match="applied twice"):
        get_method("ft+rag+rag")
    with pytest.raises(UserError, match=r"modifiers, after any method: \+anchor, \+delia, \+oracle, \+qa, \+rag, "
                                         r"\+replay, \+retrain, \+wise\)"):
        get_method("ft+nope")


def test_a_prebuilt_index_from_another_embedder_is_refused_before_any_work(saved_index):
    meta = json.loads((saved_index / "meta.json").read_text())
    check_retrieval_config(RetrievalConfig(index=str(saved_index)))  # the same embedder: accepted
    meta["embedder"]["fingerprint"] = "0123456789abcdef"
    (saved_index / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"retrieval.index: .* was built with embedder"):
        check_retrieval_config(RetrievalConfig(index=str(saved_index)))


def test_states_answer_matches_whole_normalised_tokens():
    from kinject.retrieval.retriever import states_answer

    assert states_answer("Super Bowl 50 was held at Levi's Stadium.", ["Levi's Stadium"])
    assert states_answer("It was founded in 1874.", ["the year 1900", "1874"])
    assert not states_answer("It was founded in 18745.", ["1874"])
    assert not states_answer("Anything at all.", ["", "the"])


def test_a_chunk_longer_than_the_embedders_window_is_split_not_cut():
    from kinject.retrieval.chunking import chunk_documents, split_long_chunks
    from kinject.retrieval.embedder import Embedder
    from kinject.retrieval.retriever import DEFAULT_EMBEDDER

    embedder = Embedder(DEFAULT_EMBEDDER)
    window = embedder.passage_window()
    words = " ".join(f"word{i}" for i in range(3 * window))
    doc = Document("long", words)
    chunks, split = split_long_chunks(chunk_documents([doc], "document"), [doc], embedder.tokenizer, window)
    assert split == 1 and len(chunks) >= 3 and chunks[0].id == "long#0.0"
    assert all(len(embedder.tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= window for c in chunks)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    assert chunks[0].text.startswith("word0 ") and chunks[-1].text.endswith(f"word{3 * window - 1}")


def test_the_onnx_backend_gives_the_torch_vectors_and_exports_once(tmp_path, monkeypatch):
    import numpy as np

    from kinject.retrieval.embedder import Embedder

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    texts = ["Yaithai Systems makes electric bicycles.", "Who founded it?", "A much longer passage " * 20]
    torch_vecs = Embedder().encode_passages(texts, batch_size=2)
    onnx = Embedder(backend="onnx")
    exported = next((tmp_path / "cache" / "embedders" / "onnx").glob("*.onnx"))
    onnx_vecs = onnx.encode_passages(texts, batch_size=2)
    assert onnx_vecs.shape == torch_vecs.shape and onnx_vecs.dtype == np.float32
    assert (onnx_vecs * torch_vecs).sum(1).min() > 0.9999
    assert np.allclose(np.linalg.norm(onnx.encode_queries(texts), axis=1), 1.0, atol=1e-5)
    stamp = exported.stat().st_mtime_ns
    Embedder(backend="onnx")
    assert exported.stat().st_mtime_ns == stamp  # exported once per weights


def test_the_int8_backend_ranks_as_torch_does_under_its_own_fingerprint(tmp_path, monkeypatch):
    import numpy as np

    from kinject.retrieval.embedder import Embedder

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    passages = ["Yaithai Systems makes electric bicycles.", "Mara Quell was born in Lisbon in 1961.",
                "The Orrin river floods every spring."]
    queries = ["What does Yaithai Systems make?", "Where was Mara Quell born?", "Which river floods in spring?"]
    full = Embedder(cache_dir=tmp_path / "emb")
    int8 = Embedder(cache_dir=tmp_path / "emb", backend="onnx-int8")
    assert int8.fingerprint == full.fingerprint + "+onnx-int8"  # other vectors: another cache and index record
    v_full, v_int8 = full.encode_passages(passages), int8.encode_passages(passages)
    assert not np.allclose(v_full, v_int8, atol=1e-4)  # quantized weights change the vectors...
    assert (v_full * v_int8).sum(1).min() > 0.95  # ...a little
    assert ((int8.encode_queries(queries) @ v_int8.T).argmax(1) == np.arange(3)).all()
    assert sorted(p.name for p in (tmp_path / "emb").glob("*.sqlite")) == sorted(
        [f"{full.fingerprint}.sqlite", f"{int8.fingerprint}.sqlite"])


def test_a_models_own_prompts_are_its_prefixes_unless_given(tmp_path, monkeypatch):
    import json
    import shutil

    import numpy as np

    from kinject.retrieval.embedder import Embedder, resolve_embedder_path

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    prompted = tmp_path / "prompted"
    shutil.copytree(resolve_embedder_path("all-minilm-l6-v2"), prompted)
    config = prompted / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "default_prompt_name": "query",
                                  "prompts": {"query": "query: ", "document": "passage: "}}))
    own = Embedder(str(prompted))
    assert (own.query_prefix, own.passage_prefix) == ("query: ", "passage: ")
    plain = Embedder()  # the same weights, no prompts: the prefix is what differs
    assert np.allclose(own.encode_queries(["Who sells clocks?"]), plain.encode_passages(["query: Who sells clocks?"]),
                       atol=1e-5)  # applied once, not again by the model's default_prompt_name
    assert Embedder(str(prompted), query_prefix="q: ").describe()["query_prefix"] == "q: "
