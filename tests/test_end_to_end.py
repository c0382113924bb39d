"""End to end on the real embedded SmolLM2-135M-Instruct (converted from its GGUF on first use)."""

import json
from pathlib import Path

import pytest

from kinject.cli import main

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"

SMALL = ["data.builtin.test_people=2", "data.builtin.test_orgs=1", "data.builtin.train_people=4",
         "data.builtin.train_orgs=2", "train.epochs=2", "train.progress=false", "eval.progress=false"]


@pytest.fixture(scope="module")
def real():
    from kinject.models import load_model

    return load_model()


def test_default_model_is_the_embedded_gguf_converted_and_cached(real):
    from kinject.models import cache_dir

    assert type(real.model).__name__ == "LlamaForCausalLM"
    assert real.model.config.num_hidden_layers == 30 and real.model.config.hidden_size == 576
    assert real.path == str(cache_dir() / "models" / "smollm2-135m")


def test_base_model_answers_the_shipped_retention_probes(real):
    from kinject.data.schema import Corpus
    from kinject.evaluation.runner import EvalConfig, evaluate

    corpus = Corpus(name="none", documents=[], probes=[])
    metrics, _ = evaluate(real.model, real.tokenizer, corpus, EvalConfig(kinds=["retention"], progress=False))
    assert metrics["retention"]["n"] >= 40
    assert metrics["retention"]["accuracy"] >= 0.95


def test_bench_cli_on_the_real_model(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", "--methods", "base,ft,ft-para", "--out", str(out), *SMALL])
    printed = capsys.readouterr().out
    assert code == 0
    assert "MCQ acc" in printed and "ft-para" in printed and "seeds: 0" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["name"] == "smollm2-135m"
    ft = results["methods"]["ft"]["mean"]
    assert ft["train_tokens"] > 0 and 0 <= ft["mcq.acc"] <= 1 and 0 <= ft["qa.accuracy"] <= 1
    assert results["methods"]["base"]["mean"]["retention.accuracy"] >= 0.9
    samples = [json.loads(line) for line in (out / "samples" / "ft-seed0.jsonl").read_text().splitlines()]
    assert {s["kind"] for s in samples} == {"qa", "mcq", "cloze", "retention"}
    assert [s["kind"] for s in samples].count("qa") == 12  # 3 entities x 4 facts
    assert all(s["prompt"] for s in samples)


def test_lapael_squad_base_and_rag_report_em_f1_and_recall(tmp_path, capsys):
    out = tmp_path / "squad"
    code = main(["bench", "--methods", "base,rag", "--out", str(out), "data.source=lapael-squad",
                 f"data.path={FIXTURES / 'lapael-squad'}", "data.limit=5", "eval.kinds=[qa]", "eval.progress=false",
                 "retrieval.progress=false"])
    assert code == 0
    methods = json.loads((out / "results.json").read_text())["methods"]
    assert {"qa.em", "qa.f1", "qa.accuracy"} <= set(methods["base"]["mean"])
    assert methods["rag"]["mean"]["qa.retrieval_recall"] >= 0.8  # 5 one-sentence documents, k=3
    printed = capsys.readouterr().out
    assert "QA F1" in printed and "recall@k" in printed


def test_prefix_cache_tokenizes_prompts_as_whole_strings(real):
    """The cached header plus each prompt must give the tokens of the joined string."""
    from kinject.data.builtin.world import BuiltinConfig, build_world
    from kinject.evaluation.lm import PrefixLM
    from kinject.evaluation.runner import qa_header, qa_suffix

    corpus = build_world(BuiltinConfig(test_people=2, test_orgs=1), 0)
    header = qa_header(corpus.instruction, corpus.fewshot)
    lm = PrefixLM(real.model, real.tokenizer, header, bf16=False, progress=False)
    for probe in corpus.probes_of("qa"):
        prompt = qa_suffix(probe)
        assert lm.prefix_ids + lm._encode(prompt) == real.tokenizer(header + prompt).input_ids


def test_lapael_injects_with_the_shipped_paraphraser(tmp_path, capsys):
    from kinject.lapael.paraphraser import load_paraphraser, resolve_paraphraser

    shipped = load_paraphraser(resolve_paraphraser("auto", "smollm2-135m"))
    assert shipped.hidden_size == 576 and shipped.layers == [0, 1, 2, 3, 4]
    assert shipped.meta["training"]["command"].startswith("kinject train-paraphraser builtin")
    out = tmp_path / "model"
    assert main(["inject", "--method", "lapael", "--out", str(out), "data.limit=2", "train.epochs=1",
                 *SMALL[:4], "train.progress=false"]) == 0
    assert "lapael (seed 0)" in capsys.readouterr().out and (out / "model.safetensors").is_file()
