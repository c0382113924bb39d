"""DELIA: the shipped queries, self-sampling (cached), the +delia mix, kinject self-sample."""

import json

import pytest

from kinject.cli import main
from kinject.data.builtin.retention import CANDIDATES_FILE
from kinject.errors import UserError
from kinject.evaluation.metrics import tokens
from kinject.generation.cache import GenerationCost
from kinject.generation.generators import LocalGenerator
from kinject.generation.self_sample import DeliaConfig, Query, load_queries, select_self_samples, self_sample
from kinject.models import load_model
from tests.test_bench import TINY_WORLD


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    t = tokens(text)
    return {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}


def test_shipped_queries_are_many_distinct_and_ask_nothing_the_retention_probes_ask():
    queries = load_queries("builtin")
    assert len(queries) >= 100 and len({q.text for q in queries}) == len(queries)
    assert all(q.reference is None for q in queries)  # prompt=reference falls back to the model's first answer
    probes = [json.loads(line)["question"] for line in CANDIDATES_FILE.read_text().splitlines()]
    assert len(probes) >= 50
    shared = [(q, p) for q in queries for p in probes if _grams(q.text) & _grams(p)]
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


def test_reference_prompt_asks_the_query_again_after_a_reference_answer(tiny_chat_model_dir, tmp_path):
    loaded = load_model(str(tiny_chat_model_dir))
    queries = [Query("Write a haiku about rain.", "Soft rain on the roof."), Query("Name a colour.")]
    seen: list[list[dict]] = []
    real = LocalGenerator.sample

    def spy(self, requests, n):
        seen.extend(requests)
        return real(self, requests, n)

    cfg = DeliaConfig(prompt="reference", answers_per_query=2, max_new_tokens=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalGenerator, "sample", spy)
        chats, sources = self_sample(str(tiny_chat_model_dir), queries, cfg, tmp_path / "cache", GenerationCost(),
                                     loaded)
    assert sources == {"reference_file": 1, "reference_own": 1}
    # the query without a reference is first asked bare; its reply becomes its reference
    assert seen[0] == [{"role": "user", "content": "Name a colour."}]
    asked = seen[1:]
    assert [m["role"] for m in asked[0]] == ["system", "user", "assistant", "user"]
    assert asked[0][1]["content"] == asked[0][3]["content"] == "Write a haiku about rain."
    assert asked[0][2]["content"] == "Soft rain on the roof." and asked[1][2]["content"] != ""
    assert len(chats) == 4 and [c[0]["content"] for c in chats] == [q.text for q in queries for _ in range(2)]
    assert all([m["role"] for m in c] == ["user", "assistant"] for c in chats)  # the reference is not trained on


def test_answers_per_query_fill_a_high_ratio(tiny_chat_model_dir, tmp_path):
    loaded = load_model(str(tiny_chat_model_dir))
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"query": f"Say the number {i}."}) + "\n" for i in range(3)))
    one = select_self_samples(str(tiny_chat_model_dir), loaded, 2, DeliaConfig(queries=str(few), ratio=3,
                                                                                max_new_tokens=4), None)
    assert one.info["wanted"] == 6 and one.info["mixed"] == 3  # 3 queries, 1 reply each
    two = select_self_samples(str(tiny_chat_model_dir), loaded, 2, DeliaConfig(queries=str(few), ratio=3,
                                                                                max_new_tokens=4,
                                                                                answers_per_query=2), None)
    assert two.info["mixed"] == 6 and two.info["answers_per_query"] == 2 and two.info["prompt"] == "bare"


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
