"""oracle / +oracle: each probe's own source document before it, no retrieval."""

import json

import pytest

from kinject import bench
from kinject.config import load_config
from kinject.data.schema import Corpus, Document, Probe
from kinject.errors import UserError
from kinject.methods.oracle import GoldDocumentContext, check_oracle
from kinject.methods.registry import get_method
from tests.test_bench import TINY_WORLD


def test_each_probe_gets_its_own_document_whole_and_retention_probes_none():
    corpus = Corpus("c", [Document("a", "Ada was born in Oslo."), Document("b", "Bo sells clocks.")],
                    [Probe("p", "qa", "Where was Ada born?", ["Oslo"], doc_id="a"),
                     Probe("q", "qa", "What does Bo sell?", ["clocks"], doc_id="b")])
    out = GoldDocumentContext(corpus)([*corpus.probes, Probe("r", "retention", "Capital of France?", ["Paris"])])
    assert [c.text for c in out] == ["Context: Ada was born in Oslo.", "Context: Bo sells clocks.", ""]
    assert out[1].record == {"gold_document": "b"} and out[2].record == {}
    check_oracle(corpus, None)
    orphan = Corpus("c", corpus.documents, [Probe("p", "qa", "Q?", ["x"], doc_id="zzz")])
    with pytest.raises(UserError, match="no probe of corpus 'c' names its source document"):
        check_oracle(orphan, None)


def test_oracle_composes_but_not_with_another_context():
    assert get_method("oracle").inner == "base" and get_method("ft+oracle").inner == "ft"
    for name in ("ft+rag+oracle", "rag+oracle", "ft+oracle+qa+rag"):
        with pytest.raises(UserError, match="each place a context before the question"):
            get_method(name)


def test_oracle_in_a_bench_beside_base(tiny_model_dir, tmp_path):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "methods=[base,oracle]"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    cell = results["methods"]["oracle"]["per_seed"]["0"]
    assert cell["cost"]["train_steps"] == 0 and cell["info"]["context"] == "gold source document"
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples" / "oracle-seed0.jsonl").open()]
    qa = [s for s in samples if s["kind"] == "qa"]
    assert qa and all(s["gold_document"] for s in qa)
    assert all("gold_document" not in s for s in samples if s["kind"] == "retention")
