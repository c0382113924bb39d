"""DELIA: the shipped queries, self-sampling (cached), the +delia mix, kinject self-sample."""

import json

import pytest

from kinject.cli import main
from kinject.data.builtin.retention import CANDIDATES_FILE
from kinject.errors import UserError
from kinject.evaluation.metrics import tokens
from kinject.generation.self_sample import DeliaConfig, load_queries, select_self_samples
from kinject.models import load_model
from tests.test_bench import TINY_WORLD


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    t = tokens(text)
    return {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}


def test_shipped_queries_are_many_distinct_and_ask_nothing_the_retention_probes_ask():
    queries = load_queries("builtin")
    assert len(queries) >= 100 and len(set(queries)) == len(queries)
    probes = [json.loads(line)["question"] for line in CANDIDATES_FILE.read_text().splitlines()]
    assert len(probes) >= 50
    shared = [(q, p) for q in queries for p in probes if _grams(q) & _grams(p)]
    assert shared == []


def test_self_samples_are_the_models_answers_chat_formatted_and_cached(tiny_chat_model_dir, tmp_path):
    loaded = load_model(str(tiny_chat_model_dir))
    cfg = DeliaConfig(ratio=0.5, max_new_tokens=4)
    first = select_self_samples(str(tiny_chat_model_dir), loaded, 10, cfg, tmp_path / "cache")
    assert first.info["wanted"] == 5 and len(first.texts) == 5
    assert all(t.startswith("<s>user: ") and "<s>assistant: " in t for t in first.texts)
    assert first.info["cost"]["cached"] == 0 and first.info["cost"]["completion_tokens"] > 0
    again = select_self_samples(str(tiny_chat_model_dir), loaded, 10, cfg, tmp_path / "cache")
    assert again.texts == first.texts and again.info["cost"]["cached"] == 5
    other_seed = select_self_samples(str(tiny_chat_model_dir), loaded, 10, DeliaConfig(ratio=0.5, max_new_tokens=4,
                                                                                       seed=1), tmp_path / "cache")
    assert other_seed.texts != first.texts  # another draw of queries


def test_self_samples_need_a_chat_template(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="no chat template"):
        select_self_samples(str(tiny_model_dir), load_model(str(tiny_model_dir)), 4, DeliaConfig(), None)


def test_cli_self_sample_then_delia_from_the_file(tiny_chat_model_dir, tmp_path, capsys, monkeypatch):
    from kinject import bench
    from kinject.config import load_config

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"query": f"Say something about the number {i}."}) + "\n" for i in range(6)))
    out = tmp_path / "samples.jsonl"
    model = f"model={tiny_chat_model_dir}"
    assert main(["self-sample", str(queries), "--out", str(out), model, "delia.max_new_tokens=4"]) == 0
    assert "6 self-samples" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == [f"Say something about the number {i}." for i in range(6)]
    assert all(r["messages"][1]["role"] == "assistant" for r in rows)
    cfg = load_config(None, [model, *TINY_WORLD, "methods=[ft,ft+delia]", f"delia.samples={out}", "delia.ratio=0.5"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    ft, delia = (results["methods"][m]["per_seed"]["0"] for m in ("ft", "ft+delia"))
    docs = ft["info"]["texts"]
    assert delia["info"]["self_samples"]["mixed"] == min(6, int(docs * 0.5))
    assert delia["cost"]["train_tokens"] > ft["cost"]["train_tokens"]
    assert "ft+delia" in results["comparisons"]


@pytest.mark.parametrize("args, message", [
    (["self-sample", "nope.jsonl", "--out", "x.jsonl"], "nope.jsonl"),
    (["bench", "--methods", "delia", "delia.ratio=0"], "delia.ratio"),
    (["bench", "--methods", "delia", "delia.samples=missing.jsonl"], "delia.samples"),
])
def test_bad_delia_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_response_loss_trains_the_assistants_turn_only(tiny_chat_model_dir, tmp_path):
    from kinject.training.trainer import Completion, training_rows

    loaded = load_model(str(tiny_chat_model_dir))
    whole = select_self_samples(str(tiny_chat_model_dir), loaded, 2, DeliaConfig(max_new_tokens=4), tmp_path / "c")
    reply = select_self_samples(str(tiny_chat_model_dir), loaded, 2, DeliaConfig(max_new_tokens=4, loss="response"),
                                tmp_path / "c")
    assert reply.info["loss"] == "response" and all(isinstance(t, Completion) for t in reply.texts)
    assert [str(t) for t in reply.texts] == whole.texts  # the same chats, only the loss differs
    assert all(t.prompt.endswith("<s>assistant: ") and "user: " not in t.completion for t in reply.texts)
    rows = training_rows(loaded.tokenizer, reply.texts, 256)
    learned = [sum(t != -100 for t in r["labels"]) for r in rows]
    assert all(0 < n < len(r["input_ids"]) for n, r in zip(learned, rows, strict=True))
