"""A stream of updates: the split, the summary, a stream bench with the retrain baseline, bad input."""

import dataclasses
import json
from pathlib import Path

import pytest

from kinject import bench
from kinject.config import load_config
from kinject.data.schema import Corpus, Document, Probe
from kinject.errors import UserError
from kinject.report.render import report_markdown
from kinject.stream import StreamConfig, split_updates, stream_summary
from tests.test_bench import TINY_WORLD


def _corpus(n: int, dates: list[str] | None = None, probe_every: int = 1) -> Corpus:
    docs = [Document(f"d{i}", f"Document {i}.", date=dates[i] if dates else "") for i in range(n)]
    probes = [Probe(f"p{i}", "qa", f"Question {i}?", ["x"], doc_id=f"d{i}") for i in range(0, n, probe_every)]
    return Corpus("mine", docs, probes, paraphrases={f"d{i}": [f"Para {i}."] for i in range(n)})


def test_order_split_cuts_near_equal_runs_and_probes_follow_their_documents():
    updates = split_updates(_corpus(7), StreamConfig(updates=3), seed=0)
    assert [[d.id for d in u.documents] for u in updates] == [["d0", "d1"], ["d2", "d3", "d4"], ["d5", "d6"]]
    assert [[p.id for p in u.probes] for u in updates] == [["p0", "p1"], ["p2", "p3", "p4"], ["p5", "p6"]]
    assert set(updates[1].paraphrases) == {"d2", "d3", "d4"}
    def shuffled(seed):
        return [[d.id for d in u.documents] for u in split_updates(_corpus(7), StreamConfig(3, "shuffled"), seed)]

    assert shuffled(5) == shuffled(5) and sorted(d for u in shuffled(5) for d in u) == [f"d{i}" for i in range(7)]
    assert any(shuffled(seed) != shuffled(0) for seed in range(1, 5))  # the run seed decides

def test_date_split_never_cuts_one_date():
    dates = ["2026-01", "2026-01", "2026-01", "2026-02", "2026-03", "2026-03"]
    updates = split_updates(_corpus(6, dates), StreamConfig(updates=2, split="date"), seed=0)
    assert [{d.date for d in u.documents} for u in updates] == [{"2026-01"}, {"2026-02", "2026-03"}]
    three = split_updates(_corpus(6, dates), StreamConfig(updates=3, split="date"), seed=0)
    assert [len(u.documents) for u in three] == [3, 1, 2]


@pytest.mark.parametrize("corpus, cfg, message", [
    (_corpus(3), StreamConfig(updates=4), r"stream\.updates=4: corpus 'mine' has only 3 documents"),
    (_corpus(4, probe_every=3), StreamConfig(updates=4), r"update 2 of 4 .* has no probe"),
    (_corpus(3), StreamConfig(updates=2, split="date"), r"document 'd0' of corpus 'mine' has no 'date'"),
    (_corpus(3, ["a", "a", "b"]), StreamConfig(updates=3, split="date"), r"only 2 distinct dates"),
])
def test_a_stream_that_cannot_split_is_one_error(corpus, cfg, message):
    with pytest.raises(UserError, match=message):
        split_updates(corpus, cfg, seed=0)


def test_a_probe_of_no_document_cannot_join_a_stream():
    corpus = _corpus(2)
    corpus.probes.append(Probe("lost", "qa", "Where?", ["x"], doc_id="elsewhere"))
    with pytest.raises(UserError, match=r"probe 'lost' .* names no document"):
        split_updates(corpus, StreamConfig(updates=2), seed=0)


def test_summary_final_accuracy_forgetting_and_cumulative_cost():
    matrix = [[{"mcq.acc": 0.8}],
              [{"mcq.acc": 0.6}, {"mcq.acc": 0.9}],
              [{"mcq.acc": 0.5}, {"mcq.acc": 0.7}, {"mcq.acc": 0.6}]]
    costs = [{"train_seconds": 10.0}, {"train_seconds": 20.0}, {"train_seconds": 30.0}]
    out = stream_summary(matrix, costs)
    assert out["stream.final.mcq.acc"] == pytest.approx((0.5 + 0.7 + 0.6) / 3)
    assert out["stream.forgetting.mcq.acc"] == pytest.approx(((0.8 - 0.5) + (0.9 - 0.7)) / 2)
    assert out["stream.cumulative_train_seconds"] == 60.0
    assert out["stream.one_time_seconds"] == 0.0 and out["stream.total_preparation_seconds"] == 60.0
    once = stream_summary(matrix, costs, {"paraphraser_train_seconds": 900.0, "texts": 4})
    assert once["stream.one_time_seconds"] == 900.0 and once["stream.total_preparation_seconds"] == 960.0


def test_summary_leaves_out_the_updates_without_a_kind():
    matrix = [[{"qa.accuracy": 0.4, "mcq.acc": 0.8}],
              [{"qa.accuracy": 0.2, "mcq.acc": 0.6}, {"qa.accuracy": 0.9}]]  # update 2 has no MCQ probe
    out = stream_summary(matrix, [{"train_seconds": 1.0}] * 2)
    assert out["stream.final.mcq.acc"] == pytest.approx(0.6) and out["stream.forgetting.mcq.acc"] == pytest.approx(.2)
    assert out["stream.final.qa.accuracy"] == pytest.approx((0.2 + 0.9) / 2)


def test_a_context_covers_every_update_so_far(monkeypatch):
    from kinject.methods import oracle, rag
    from kinject.methods.registry import Injected, InjectRequest

    first, second = split_updates(_corpus(4), StreamConfig(updates=2), seed=0)
    cfg = load_config(None, [])
    req = InjectRequest(None, second, cfg, 0, Path("unused"), history=(first,))
    assert [d.id for d in req.seen.documents] == ["d0", "d1", "d2", "d3"] and len(req.seen.probes) == 4
    assert InjectRequest(None, first, cfg, 0, Path("unused")).seen is first
    indexed = []
    monkeypatch.setattr(rag, "open_retriever", lambda docs, *a: (indexed.extend(d.id for d in docs), 0.0))
    monkeypatch.setattr(rag, "RetrievalContext", lambda *a: None)
    monkeypatch.setattr(rag, "describe", lambda *a: {})
    rag.with_retrieval(Injected(model=None, tokenizer=None), req)
    assert indexed == ["d0", "d1", "d2", "d3"]  # the index holds update 1's documents too
    gold = oracle.with_gold_document(Injected(model=None, tokenizer=None), req).context
    assert set(gold.documents) == {"d0", "d1", "d2", "d3"}


def test_a_stream_refuses_a_prebuilt_index_and_a_distributed_launch(tiny_model_dir, tmp_path, monkeypatch):
    args = [f"model={tiny_model_dir}", *TINY_WORLD, "stream.updates=2", "methods=[ft+rag]"]
    with pytest.raises(UserError, match=r"retrieval\.index .*: a prebuilt index holds every update's documents"):
        bench.check_run(load_config(None, [*args, f"retrieval.index={tmp_path}"]))
    monkeypatch.setattr(bench, "world_size", lambda: 2)
    with pytest.raises(UserError, match=r"stream\.updates=2: a stream runs in one process"):
        bench.check_run(load_config(None, args))


def test_a_stream_bench_with_the_retrain_baseline_and_rag(tiny_model_dir, tmp_path):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "stream.updates=2",
                             "methods=[ft,ft+retrain,rag]", "eval.kinds=[qa,mcq,retention]"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    cells = {m: results["methods"][m]["per_seed"]["0"] for m in cfg.methods}
    for cell in cells.values():
        stream = cell["stream"]
        assert [len(row) for row in stream["matrix"]] == [1, 2] and len(stream["general"]) == 2
        assert sum(u["documents"] for u in stream["updates"]) == 3
        assert "retention.accuracy" in stream["general"][1] and "mcq.acc" in stream["matrix"][1][0]
        assert 0 <= cell["metrics"]["stream.final.mcq.acc"] <= 1 and "stream.forgetting.mcq.acc" in cell["metrics"]
        assert cell["metrics"]["mcq.acc"] == pytest.approx(  # the final model on every probe
            sum(r["acc"] for r in _samples(tmp_path, cell, "mcq")) / len(_samples(tmp_path, cell, "mcq")))
    ft, retrain, rag = cells["ft"], cells["ft+retrain"], cells["rag"]
    # update 2: ft trains its own documents, the baseline retrains on both updates' documents
    assert retrain["stream"]["cost"][1]["train_tokens"] > ft["stream"]["cost"][1]["train_tokens"]
    assert retrain["stream"]["cost"][0]["train_tokens"] == ft["stream"]["cost"][0]["train_tokens"]
    assert rag["cost"]["train_steps"] == 0 and all(c["index_seconds"] > 0 for c in rag["stream"]["cost"])
    # rag's second update appended its documents to the first update's index
    meta = json.loads((tmp_path / "run" / "models" / "rag-seed0" / "update2" / "index" / "meta.json").read_text())
    assert "extended" in meta and meta["documents"] == 3
    assert ft["cost"]["train_tokens"] == sum(c["train_tokens"] for c in ft["stream"]["cost"])
    # each update's own info: the baseline's second training holds both updates' texts
    assert [i["texts"] for i in retrain["stream"]["info"]] == [ft["stream"]["info"][0]["texts"],
                                                                sum(i["texts"] for i in ft["stream"]["info"])]
    assert ft["info"] == ft["stream"]["info"][-1]
    entry = results["methods"]["ft"]["stream"]
    assert len(entry["matrix_mean"]) == 2 and "mcq.acc" in entry["matrix_mean"][1][1]
    report = report_markdown(results)
    assert "## A stream of updates" in report and "`ft+retrain`, mcq.acc:" in report
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>A stream of updates</h2>" in page and "cumulative preparation seconds" in page


def _samples(run_parent, cell, kind):
    path = run_parent / "run" / "samples" / f"{cell['method']}-seed{cell['seed']}.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == kind]


def test_only_methods_that_read_the_model_get_a_frozen_copy_in_a_stream():
    from kinject.methods import get_method

    assert [get_method(m).reads_model for m in ("ft", "rag", "ft+retrain", "lapael")] == [False] * 4
    assert all(get_method(m).reads_model for m in ("distill", "ft+anchor", "delia", "ft-para+replay+rag"))


def test_a_stream_stopped_mid_way_resumes_at_the_next_update_and_matches_an_uninterrupted_one(
        tiny_model_dir, tmp_path, monkeypatch):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "stream.updates=2", "methods=[ft]",
                             "eval.kinds=[qa,retention]"])
    whole = bench.run_bench(cfg, tmp_path / "whole", log=lambda m: None)["methods"]["ft"]["per_seed"]["0"]
    real, calls = bench.evaluate, []

    def stop_in_update_2(*args, **kwargs):  # update 1: its own probes, then retention; update 2: stop
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("stopped")
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "evaluate", stop_in_update_2)
    with pytest.raises(RuntimeError, match="stopped"):
        bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    partial = tmp_path / "run" / "models" / "ft-seed0" / "partial"
    kept = json.loads((partial / "state.json").read_text())
    assert len(kept["matrix"]) == 1 and kept["seconds"] > 0
    (partial / "state.json").write_text(json.dumps({**kept, "seconds": 1000.0}))  # as if update 1 took 1000 s
    monkeypatch.setattr(bench, "evaluate", real)
    trained, spec = [], bench.get_method("ft")
    counting = dataclasses.replace(spec, fn=lambda req: trained.append(req) or spec.fn(req))
    monkeypatch.setattr(bench, "get_method", lambda m: counting if m == "ft" else spec)
    resumed = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)["methods"]["ft"]["per_seed"]["0"]
    assert len(trained) == 1 and trained[0].history  # update 2 only, on top of update 1
    untimed = lambda m: {k: v for k, v in m.items() if "seconds" not in k}  # noqa: E731
    assert resumed["stream"]["matrix"] == whole["stream"]["matrix"]
    assert untimed(resumed["metrics"]) == untimed(whole["metrics"]) and "qa.accuracy" in resumed["metrics"]
    assert not partial.exists()
    assert 1000 < resumed["cost"]["wall_seconds"] < 1100  # the update run before the stop counts


def test_a_lora_stream_saves_its_final_model_whole(tiny_model_dir, tmp_path):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "stream.updates=2", "methods=[ft]",
                             "train.mode=lora", "save_models=true", "eval.kinds=[qa]"])
    bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    saved = tmp_path / "run" / "models" / "ft-seed0"
    assert (saved / "config.json").is_file() and not (saved / "adapter_config.json").exists()  # both adapters merged


def test_qa_demonstrations_in_a_stream_stay_clear_of_every_updates_probes(tmp_path):
    from kinject.config import RunConfig
    from kinject.data.schema import Fact
    from kinject.methods.qa_mix import with_demonstrations
    from kinject.methods.registry import InjectRequest

    corpus = _corpus(2)
    corpus.probes = [Probe("p0", "qa", "Where is d0?", ["Paris"], doc_id="d0"),
                     Probe("p1", "qa", "Where is d1?", ["Lyon"], doc_id="d1")]
    corpus.train_facts = [Fact(f"t{i}", "t", f"Office {i} is in {c}.", c) for i, c in enumerate(("Paris", "Nice"))]
    corpus.train_qa = [Probe(f"q{i}", "qa", f"Where is office {i}?", [c], fact_id=f"t{i}")
                       for i, c in enumerate(("Paris", "Nice"))]
    first, second = split_updates(corpus, StreamConfig(updates=2), seed=0)
    cfg = RunConfig()
    cfg.qa.ratio = None  # every usable pair
    alone = with_demonstrations(InjectRequest(None, second, cfg, 0, tmp_path)).demonstrations
    assert alone.info["usable"] == 2  # update 2 alone would teach update 1's answer
    in_stream = with_demonstrations(InjectRequest(None, second, cfg, 0, tmp_path, history=(first,),
                                                  stream_corpus=corpus)).demonstrations
    assert in_stream.info["usable"] == 1 and in_stream.info["dropped"] == {"answer": 1}
    assert all("Paris" not in text for text in map(str, in_stream.pairs))


def test_retrain_prepares_before_the_other_mixes_wherever_it_stands(tiny_model_dir, tmp_path, monkeypatch):
    from kinject.methods import get_method, registry

    received = []
    monkeypatch.setitem(registry._REGISTRY, "record", registry.MethodSpec("record", received.append, "records"))
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "stream.updates=2", "qa.ratio=0.3"])
    corpus = bench.load_corpus(cfg.data, 0)
    first, second = split_updates(corpus, cfg.stream, 0)
    spec = get_method("record+retrain+qa")
    assert spec.name == "record+retrain+qa"
    # a wrap too sees the retrained request (+wise blends with the fresh base): retrain is composed outermost
    assert get_method("ft+retrain+wise").description == get_method("ft+wise+retrain").description
    spec.fn(registry.InjectRequest(bench.load_model(cfg.model, cfg.model_dtype), second, cfg, 0, tmp_path,
                                   history=(first,), stream_corpus=corpus))
    req = received[0]
    assert [d.id for d in req.corpus.documents] == [d.id for d in corpus.documents] and not req.history
    # +qa counted its demonstrations on every update so far, as in record+qa+retrain
    assert round(0.3 * len(corpus.facts)) != round(0.3 * len(second.facts))
    assert req.demonstrations.info["demonstrations"] == round(0.3 * len(corpus.facts))
