"""BM25 and reciprocal rank fusion (kinject.retrieval.lexical), and the retriever's three modes on
the real shipped embedder and FAISS."""

import pytest

from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.data.schema import Document
from kinject.retrieval.chunking import Chunk
from kinject.retrieval.index import Hit
from kinject.retrieval.lexical import LexicalIndex, reciprocal_rank_fusion
from kinject.retrieval.retriever import RetrievalConfig, RetrievalContext, describe, open_retriever

DOCS = [Document("a", "Quillon Works sells tide clocks in Varnholt."),
        Document("b", "The lighthouse at Varnholt is painted red."),
        Document("c", "Marlow was born in Tryjae and studied glass.")]


def chunk(cid: str) -> Chunk:
    return Chunk(cid, cid, cid, 0, len(cid))


def test_bm25_ranks_the_chunk_sharing_rare_terms_first_and_drops_non_matches():
    index = LexicalIndex([Chunk(d.id, d.id, d.text, 0, len(d.text)) for d in DOCS])
    hits = index.search(["Where was Marlow born?", "Which lighthouse in Varnholt?", "zzz qqq"], k=3)
    assert hits[0][0].chunk.doc_id == "c" and [h.chunk.doc_id for h in hits[0]] == ["c"]
    assert hits[1][0].chunk.doc_id == "b" and {h.chunk.doc_id for h in hits[1]} == {"a", "b"}
    assert hits[1][0].score > hits[1][1].score > 0 and [h.rank for h in hits[1]] == [1, 2]
    assert hits[2] == []


def test_reciprocal_rank_fusion_sums_inverse_ranks():
    x, y, z = chunk("x"), chunk("y"), chunk("z")
    dense = [Hit(x, 0.9, 1), Hit(y, 0.8, 2), Hit(z, 0.1, 3)]
    lexical = [Hit(z, 7.0, 1), Hit(y, 3.0, 2)]
    fused = reciprocal_rank_fusion([dense, lexical], k=2, constant=60)
    assert [h.chunk.id for h in fused] == ["z", "y"]  # 1/61 + 1/63 > 2/62 > 1/61 (x)
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63) and [h.rank for h in fused] == [1, 2]
    assert [h.chunk.id for h in reciprocal_rank_fusion([dense, lexical], k=5, constant=0)] == ["z", "x", "y"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_gold_passage_of_most_builtin_questions(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    world = build_world(BuiltinConfig(test_people=3, test_orgs=2, train_people=2, train_orgs=1), 5)
    cfg = RetrievalConfig(mode=mode, progress=False, candidates=10)
    retriever, _ = open_retriever(world.documents, cfg, tmp_path / "index")
    assert (retriever.index is None) == (mode == "bm25")
    assert (tmp_path / "index").exists() == (mode != "bm25")  # bm25 embeds and saves nothing
    out = RetrievalContext(retriever, world, k=3)(world.probes_of("qa"))
    recall = sum(c.record["gold_rank"] is not None for c in out) / len(out)
    assert recall > 0.5, (mode, recall)
    record = describe(cfg, retriever)
    assert record["mode"] == mode and ("embedder" in record) == (mode != "bm25")
    assert ("rrf_constant" in record) == (mode == "hybrid")


def test_hybrid_keeps_a_chunk_either_ranking_puts_first(tmp_path, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    cfg = RetrievalConfig(progress=False, chunking="document")
    dense, _ = open_retriever(DOCS, cfg, None)
    hybrid, _ = open_retriever(DOCS, RetrievalConfig(progress=False, chunking="document", mode="hybrid"), None)
    question = ["Where was Marlow born?"]
    top_dense = dense.search(question, 1)[0][0].chunk.id
    top_lexical = hybrid.lexical.search(question, 1)[0][0].chunk.id
    assert {top_dense, top_lexical} <= {h.chunk.id for h in hybrid.search(question, 2)[0]}


def test_an_unknown_mode_is_refused_by_name():
    from kinject.errors import UserError
    from kinject.retrieval.retriever import check_retrieval_config

    with pytest.raises(UserError, match=r"retrieval\.mode"):
        check_retrieval_config(RetrievalConfig(mode="sparse"))




@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A one-layer BERT cross-encoder with random weights and the shipped embedder's vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from kinject.retrieval.embedder import resolve_embedder_path

    out = tmp_path_factory.mktemp("tiny-ce")
    tok = AutoTokenizer.from_pretrained(resolve_embedder_path("all-minilm-l6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_the_reranker_keeps_the_k_best_candidates_by_its_score(tiny_cross_encoder, tmp_path, monkeypatch):
    from kinject.retrieval.rerank import Reranker

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    reranker = Reranker(str(tiny_cross_encoder))
    assert reranker.describe()["fingerprint"]
    # score a pair by the words question and passage share (a stand-in for a trained cross-encoder)
    monkeypatch.setattr(reranker.model, "predict", lambda pairs, **_: __import__("numpy").array(
        [len(set(q.lower().split()) & set(p.lower().rstrip(".").split())) for q, p in pairs], dtype=float))
    cfg = RetrievalConfig(progress=False, chunking="document", candidates=3)
    retriever, _ = open_retriever(DOCS, cfg, None)
    retriever.reranker = reranker
    question = "was marlow born in tryjae"
    hits = retriever.search([question, question], k=2)
    assert [h.chunk.doc_id for h in hits[0]] == ["c", "a"] == [h.chunk.doc_id for h in hits[1]]  # 5 words, 1
    assert [h.rank for h in hits[0]] == [1, 2] and hits[0][0].score == 5.0
    assert describe(cfg, retriever)["rerank"]["path"] == str(tiny_cross_encoder)


def test_a_missing_or_multi_label_reranker_is_one_line(tiny_cross_encoder, tmp_path):
    from transformers import BertForSequenceClassification

    from kinject.errors import UserError
    from kinject.retrieval.rerank import Reranker
    from kinject.retrieval.retriever import check_retrieval_config

    with pytest.raises(UserError, match=r"retrieval\.rerank: .*nope.* not a model directory"):
        check_retrieval_config(RetrievalConfig(rerank=str(tmp_path / "nope")))
    two = BertForSequenceClassification.from_pretrained(tiny_cross_encoder, num_labels=2,
                                                        ignore_mismatched_sizes=True)
    two.save_pretrained(tmp_path / "two")
    for f in tiny_cross_encoder.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            (tmp_path / "two" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match="2 output labels"):
        Reranker(str(tmp_path / "two"))


def test_the_query_likelihood_reranker_scores_log_p_of_the_question_after_the_passage(tiny_model_dir):
    import torch

    from kinject.retrieval.rerank import UPR_PROMPT, QueryLikelihoodReranker, open_reranker

    reranker = open_reranker(f"lm:{tiny_model_dir}")
    assert isinstance(reranker, QueryLikelihoodReranker) and reranker.describe()["fingerprint"]
    tok, model = reranker.tokenizer, reranker.model
    pairs = [("Where was Marlow born?", d.text) for d in DOCS] + [("Who sells tide clocks?", DOCS[0].text)]
    reranker.batch_size = 3  # two batches, the first padded: each pair scored as if alone
    batched = reranker.scores(pairs)

    def alone(question: str, passage: str) -> float:
        head = tok(UPR_PROMPT.format(passage=passage)).input_ids
        ids = head + tok(" " + question, add_special_tokens=False).input_ids
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        return sum(logp[t - 1, ids[t]].item() for t in range(len(head), len(ids)))

    assert batched == pytest.approx([alone(q, p) for q, p in pairs], abs=1e-3)
    assert all(s < 0 for s in batched)
    # the candidates come back best first by those scores, k of them
    hits = [[Hit(Chunk(d.id, d.id, d.text, 0, len(d.text)), 0.0, r) for r, d in enumerate(DOCS, 1)]]
    [top] = reranker.rerank(["Where was Marlow born?"], hits, k=2)
    order = sorted(range(3), key=lambda i: -batched[i])[:2]
    assert [h.chunk.doc_id for h in top] == [DOCS[i].id for i in order] and [h.rank for h in top] == [1, 2]
    assert top[0].score == pytest.approx(batched[order[0]], abs=1e-3)


def test_an_lm_reranker_without_a_model_is_one_line(tmp_path):
    from kinject.errors import UserError
    from kinject.retrieval.retriever import check_retrieval_config

    with pytest.raises(UserError, match=r"retrieval\.rerank: 'lm:' names no model"):
        check_retrieval_config(RetrievalConfig(rerank="lm:"))
    with pytest.raises(UserError, match=r"model .*nope.*: no such directory"):
        check_retrieval_config(RetrievalConfig(rerank=f"lm:{tmp_path / 'nope'}"))
