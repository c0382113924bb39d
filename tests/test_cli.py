"""inject -> eval round trip and the help text, on the tiny model."""

import json

from kinject.cli import build_parser, main

from .test_bench import TINY_WORLD


def test_inject_then_eval_a_saved_model(tiny_model_dir, tmp_path, capsys):
    saved = tmp_path / "ft-model"
    assert main(["inject", "--method", "ft", "--out", str(saved), f"model={tiny_model_dir}", *TINY_WORLD]) == 0
    assert (saved / "config.json").is_file() and (saved / "model.safetensors").is_file()
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps({"id": "p", "kind": "mcq", "question": "Which?", "answers": ["a b"],
                                  "choices": ["a b", "c d"], "label": 0}) + "\n")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(saved), "--probes", str(probes), "--out", str(out),
                 "eval.kinds=[mcq]", "eval.progress=false"]) == 0
    printed = capsys.readouterr().out
    assert "mcq" in printed and "seed: 0" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["metrics"]["mcq"]["n"] == 1
    assert len((out / "samples.jsonl").read_text().splitlines()) == 1


def test_help_lists_every_command_and_the_override_syntax(capsys):
    text = build_parser().format_help()
    for cmd in ("bench", "inject", "eval", "index", "train-paraphraser", "methods"):
        assert cmd in text
    assert "key=value" in text


def test_methods_lists_the_registry(capsys):
    assert main(["methods"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[:3] == ["base", "ft", "ft-para"]
    assert {"neftune", "noise-gaussian", "freelb", "lapael", "lapael+para", "rag", "<m>+rag"} <= set(names)


def test_index_build_then_query_prints_scored_passages(tmp_path, capsys):
    from .conftest import FIXTURES

    out = tmp_path / "ix"
    assert main(["index", "build", str(FIXTURES / "lapael-squad"), "--out", str(out), "retrieval.progress=false",
                 "retrieval.cache=false"]) == 0
    assert "chunks (flat)" in capsys.readouterr().out
    assert main(["index", "build", str(FIXTURES / "lapael-squad"), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    first = json.loads((out / "chunks.jsonl").read_text().splitlines()[0])
    assert main(["index", "query", str(out), first["text"], "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1" and first["doc_id"] in lines[0]
    assert float(lines[0].split()[1]) >= float(lines[1].split()[1])
    for mode in ("bm25", "hybrid"):  # the saved chunks ranked lexically, or both rankings fused
        assert main(["index", "query", str(out), first["text"], "-k", "2", "--mode", mode]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and first["doc_id"] in lines[0], mode


def test_inject_rag_then_eval_with_its_index(tiny_model_dir, tmp_path, capsys):
    saved = tmp_path / "rag-model"
    assert main(["inject", "--method", "rag", "--out", str(saved), f"model={tiny_model_dir}", *TINY_WORLD,
                 "retrieval.progress=false"]) == 0
    assert (saved / "index" / "meta.json").is_file() and "retrieval.index=" in capsys.readouterr().out
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(saved), "--out", str(out), f"retrieval.index={saved / 'index'}",
                 *TINY_WORLD, "eval.kinds=[qa]"]) == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["prompt"].count("Context: ") == 1 and s["passages"] for s in samples)
    assert "retrieval_recall" in json.loads((out / "results.json").read_text())["metrics"]["qa"]
