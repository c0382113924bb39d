"""The suite runner on the tiny model: run directory, results schema, seeds, resume, refusal."""

import json

import pytest

from kinject import bench
from kinject.config import load_config
from kinject.errors import UserError

TINY_WORLD = ["data.builtin.test_people=2", "data.builtin.test_orgs=1", "data.builtin.train_people=2",
              "data.builtin.train_orgs=1", "data.builtin.paraphrases=2", "para.k=2", "train.epochs=1",
              "model_dtype=float32", "train.bf16=false", "train.progress=false", "eval.bf16=false",
              "eval.progress=false", "eval.max_new_tokens=3", "eval.cloze_max_new_tokens=3", "eval.limit=4"]


def _cfg(model_dir, *extra):
    return load_config(None, [f"model={model_dir}", *TINY_WORLD, *extra])


def test_bench_writes_a_complete_run_directory(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, "methods=[base,ft,ft-para]", "seeds=[0,1]")
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    out = tmp_path / "run"
    assert (out / "config.yaml").is_file() and (out / "report.md").is_file()
    assert "<h1>kinject report</h1>" in (out / "report.html").read_text()
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["seeds"] == [0, 1]
    assert set(on_disk["methods"]) == {"base", "ft", "ft-para"}
    assert set(on_disk["data"]["hash"]) == {"0", "1"} and on_disk["data"]["hash"]["0"] != on_disk["data"]["hash"]["1"]
    for name, entry in on_disk["methods"].items():
        assert entry["seeds"] == [0, 1]
        assert "mcq.acc" in entry["mean"] and "mcq.acc" in entry["stderr"]
        assert (out / "samples" / f"{name}-seed0.jsonl").is_file()
    base, ft, para = (on_disk["methods"][m]["mean"]["train_tokens"] for m in ("base", "ft", "ft-para"))
    assert base == 0 and 0 < ft < para
    assert 0 <= results["methods"]["ft"]["mean"]["retention.accuracy"] <= 1
    assert "± " in (out / "report.md").read_text()
    base_cell, ft_cell = (on_disk["methods"][m]["per_seed"]["0"] for m in ("base", "ft"))
    assert base_cell["precision"] == {"weights": "float32", "train": None, "eval": "fp32"}  # base trains nothing
    assert ft_cell["precision"] == {"weights": "float32", "train": "fp32", "eval": "fp32"}  # whatever the machine
    assert "- precision: weights float32, train fp32, eval fp32" in (out / "report.md").read_text()


def test_precision_line_names_the_cells_that_differ():
    from kinject.report.render import precision_line

    def cell(train, evaluated, steps=1):
        return {"cost": {"train_steps": steps}, "precision": {"train": train, "eval": evaluated}}

    results = {"methods": {"base": {"per_seed": {"0": cell(None, "bf16", 0)}},
                           "ft": {"per_seed": {"0": cell("bf16", "bf16"), "1": cell("fp32", "bf16")}}}}
    assert precision_line(results) == ("precision: weights unrecorded, train mixed: bf16 (ft-seed0); fp32 (ft-seed1), "
                                       "eval bf16")
    del results["methods"]["ft"]["per_seed"]["1"]["precision"]  # a cell from before kinject recorded it
    assert "fp32" not in precision_line(results) and "unrecorded (ft-seed1)" in precision_line(results)


def test_resume_keeps_finished_cells(tiny_model_dir, tmp_path, monkeypatch):
    cfg = _cfg(tiny_model_dir, "methods=[base,ft]")
    bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    (tmp_path / "run" / "cells" / "ft-seed0.json").unlink()
    calls = []
    real = bench.run_cell
    monkeypatch.setattr(bench, "run_cell", lambda m, *a: calls.append(m) or real(m, *a))
    bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    assert calls == ["ft"]


def test_a_different_config_is_refused_and_nothing_is_overwritten(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    bench.run_bench(_cfg(tiny_model_dir, "methods=[base]"), out, log=lambda m: None)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match=r"different config \(train\.lr 0\.0003 -> 0\.5\); .* give the recorded"):
        bench.run_bench(_cfg(tiny_model_dir, "methods=[base]", "train.lr=0.5"), out, log=lambda m: None)
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    config = (out / "config.yaml").read_text()
    bench.run_bench(_cfg(tiny_model_dir, "methods=[base]", "eval.progress=true"), out, log=lambda m: None)
    assert (out / "config.yaml").read_text() == config  # progress bars are no part of a run: it resumed
    bench.run_bench(_cfg(tiny_model_dir, "methods=[base]", "report.min_retention=0.5"), out, log=lambda m: None)
    assert (out / "config.yaml").read_text() == config  # nor is the report's threshold, which the results take
    assert json.loads((out / "results.json").read_text())["config"]["report"] == {"min_retention": 0.5}
    (out / "config.yaml").write_text(config.replace("  general_qa_file: null\n", ""))  # written before the key existed
    resumed = bench.run_bench(_cfg(tiny_model_dir, "methods=[base]"), out, log=lambda m: None)  # not refused
    assert "general_qa_file" not in (out / "config.yaml").read_text() and set(resumed["methods"]) == {"base"}
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a kinject run"):
        bench.run_bench(_cfg(tiny_model_dir, "methods=[base]"), other, log=lambda m: None)
    assert (other / "notes.txt").read_text() == "keep me"


def test_relative_retention_is_against_base_of_the_same_seed():
    from kinject.report.aggregate import add_relative_retention

    cells = {"base": {0: {"metrics": {"retention.accuracy": 0.8}}, 1: {"metrics": {"retention.accuracy": 0.5}}},
             "ft": {0: {"metrics": {"retention.accuracy": 0.4}}, 1: {"metrics": {"retention.accuracy": 0.5}}}}
    add_relative_retention(cells)
    assert cells["ft"][0]["metrics"]["retention.relative"] == 0.5
    assert cells["ft"][1]["metrics"]["retention.relative"] == 1.0
    assert cells["base"][0]["metrics"]["retention.relative"] == 1.0


def test_a_composition_reuses_its_inner_result_of_the_same_seed(tiny_model_dir, tmp_path, monkeypatch):
    from kinject.methods import finetune

    trained = []
    real = finetune.train_causal_lm
    monkeypatch.setattr(finetune, "train_causal_lm", lambda *a, **k: trained.append(1) or real(*a, **k))
    cfg = _cfg(tiny_model_dir, "methods=[ft,ft+rag,rag]", "retrieval.progress=false", "retrieval.cache=false")
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    assert len(trained) == 1  # ft+rag applied retrieval to ft's model instead of training again
    ft, ft_rag, rag = (results["methods"][m]["per_seed"]["0"] for m in ("ft", "ft+rag", "rag"))
    assert ft_rag["info"]["reused"] == "ft" and ft_rag["cost"]["train_tokens"] == ft["cost"]["train_tokens"] > 0
    assert rag["cost"]["train_tokens"] == 0 and rag["cost"]["index_seconds"] > 0
    assert "qa.retrieval_recall" in rag["metrics"] and "qa.retrieval_recall" not in ft["metrics"]
    assert (tmp_path / "run" / "models" / "rag-seed0" / "index" / "meta.json").is_file()
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples" / "rag-seed0.jsonl").open()]
    assert all("Context: " in s["prompt"] and "passages" in s for s in samples)
    assert {"answer_retrieved", "gold_rank"} <= set(next(s for s in samples if s["kind"] == "qa"))
    assert "recall@k" in (tmp_path / "run" / "report.md").read_text()


def test_rag_with_the_query_likelihood_reranker_records_it(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, "methods=[rag]", "retrieval.progress=false", "retrieval.cache=false",
               f"retrieval.rerank=lm:{tiny_model_dir}", "retrieval.candidates=3")
    cell = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)["methods"]["rag"]["per_seed"]["0"]
    record = cell["info"]["retrieval"]
    assert record["candidates"] == 3 and record["rerank"]["scoring"] == "query likelihood (UPR)"
    assert record["rerank"]["path"] == str(tiny_model_dir) and 0 <= cell["metrics"]["qa.retrieval_recall"] <= 1
