"""Every bad input: one line on stderr naming the file/line/key, exit code 2, no traceback."""

import json
import os
import stat

import pytest

from kinject.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _one_clean_line(err):
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("kinject: error:")


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs.jsonl"
    d.write_text(json.dumps({"id": "d1", "text": "Zorvath Quell was born in 1962."}) + "\n")
    return d


@pytest.fixture
def probes(tmp_path):
    p = tmp_path / "probes.jsonl"
    p.write_text(json.dumps({"id": "p1", "kind": "qa", "question": "When was Zorvath Quell born?",
                             "answers": ["1962"], "doc_id": "d1"}) + "\n")
    return p


def test_malformed_jsonl_names_the_line(capsys, tmp_path, probes):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"id": "d1", "text": "fine"}\n{"id": "d2", "text": \n')
    code, err = run(capsys, "bench", "--out", str(tmp_path / "out"), "data.source=jsonl", f"data.path={bad}",
                    f"data.probes={probes}")
    assert code == 2 and f"{bad}:2: malformed JSON" in err
    _one_clean_line(err)
    assert not (tmp_path / "out" / "results.json").exists()


def test_missing_field_names_line_and_field(capsys, tmp_path, docs):
    bad = tmp_path / "probes.jsonl"
    bad.write_text(json.dumps({"id": "p1", "kind": "qa", "answers": ["x"]}) + "\n")
    code, err = run(capsys, "bench", "--out", str(tmp_path / "out"), "data.source=jsonl", f"data.path={docs}",
                    f"data.probes={bad}")
    assert code == 2 and f"{bad}:1: missing field 'question'" in err
    _one_clean_line(err)


def test_empty_corpus(capsys, tmp_path, probes):
    empty = tmp_path / "texts"
    empty.mkdir()
    code, err = run(capsys, "bench", "--out", str(tmp_path / "out"), "data.source=textdir", f"data.path={empty}",
                    f"data.probes={probes}")
    assert code == 2 and "is empty: no documents" in err
    _one_clean_line(err)


def test_unknown_method(capsys, tmp_path):
    code, err = run(capsys, "bench", "--methods", "base,telepathy", "--out", str(tmp_path / "out"))
    assert code == 2 and "unknown method 'telepathy'" in err
    _one_clean_line(err)
    assert not (tmp_path / "out").exists()


def test_unknown_config_key(capsys, tmp_path):
    code, err = run(capsys, "bench", "--out", str(tmp_path / "out"), "train.learning_rate=1")
    assert code == 2 and "unknown config key 'train.learning_rate'" in err
    _one_clean_line(err)


def test_model_path_that_does_not_exist(capsys, tmp_path):
    code, err = run(capsys, "eval", "--model", str(tmp_path / "no-such-model"))
    assert code == 2 and "no-such-model" in err and "no such directory" in err
    _one_clean_line(err)


def test_directory_that_is_not_a_model(capsys, tmp_path):
    code, err = run(capsys, "eval", "--model", str(tmp_path))
    assert code == 2 and "config.json is missing" in err
    _one_clean_line(err)


def test_missing_config_file_and_bad_flag(capsys, tmp_path):
    code, err = run(capsys, "bench", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: no such config file" in err
    _one_clean_line(err)
    code, err = run(capsys, "bench", "--seeds", "many")
    assert code == 2 and "--seeds" in err
    _one_clean_line(err)
    code, err = run(capsys, "bench", "--seed", "3", "--out", str(tmp_path / "out"))  # no abbreviation of --seeds
    assert code == 2 and "unrecognized arguments: --seed" in err and not (tmp_path / "out").exists()
    _one_clean_line(err)


def test_lapael_squad_missing_directory(capsys, tmp_path):
    code, err = run(capsys, "bench", "--out", str(tmp_path / "out"), "data.source=lapael-squad",
                    f"data.path={tmp_path / 'nowhere'}")
    assert code == 2 and "nowhere: no such directory" in err
    _one_clean_line(err)


def test_ft_para_without_paraphrases_is_a_user_error(capsys, tmp_path, tiny_model_dir, docs, probes):
    code, err = run(capsys, "bench", "--methods", "ft-para", "--out", str(tmp_path / "out"),
                    f"model={tiny_model_dir}", "data.source=jsonl", f"data.path={docs}", f"data.probes={probes}")
    assert code == 2 and "has no paraphrases" in err
    _one_clean_line(err)


def test_existing_eval_output_is_not_overwritten(capsys, tmp_path, tiny_model_dir, probes):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("mine")
    code, err = run(capsys, "eval", "--model", str(tiny_model_dir), "--probes", str(probes), "--out", str(out))
    assert code == 2 and "already exists" in err
    assert (out / "results.json").read_text() == "mine"


def test_unknown_probe_kind_in_eval_kinds(capsys, tmp_path, tiny_model_dir, probes):
    code, err = run(capsys, "eval", "--model", str(tiny_model_dir), "--probes", str(probes), "eval.kinds=[qaa]")
    assert code == 2 and "'eval.kinds': ['qaa'] has 'qaa', which is not one of" in err
    _one_clean_line(err)


def test_index_build_of_a_missing_corpus(capsys, tmp_path):
    code, err = run(capsys, "index", "build", str(tmp_path / "nope"), "--out", str(tmp_path / "ix"))
    assert code == 2 and "nope: no such file or directory" in err
    _one_clean_line(err)
    assert not (tmp_path / "ix").exists()


def _base_run(tmp_path, tiny_model_dir, docs, probes, *extra):
    return ["bench", "--out", str(tmp_path / "run"), "methods=[base]", "eval.kinds=[qa]", "data.source=jsonl",
            f"data.path={docs}", f"data.probes={probes}", f"model={tiny_model_dir}", *extra]


def test_a_corrected_model_path_runs_in_the_same_out(capsys, tmp_path, tiny_model_dir, docs, probes):
    code, err = run(capsys, *_base_run(tmp_path, tiny_model_dir, docs, probes), "model=/nonexistent")
    assert code == 2 and "model '/nonexistent': no such directory" in err
    assert not (tmp_path / "run").exists()
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    assert (tmp_path / "run" / "cells" / "base-seed0.json").is_file()


def test_a_run_that_holds_no_cell_gives_way_to_a_corrected_config(capsys, tmp_path, tiny_model_dir, docs, probes):
    from kinject.bench import prepare_run_dir
    from kinject.config import load_config

    prepare_run_dir(tmp_path / "run", load_config(None, ["train.lr=1e-3"]))  # as a run killed before its first cell
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0


def test_changed_probes_under_an_existing_run_are_refused(capsys, tmp_path, tiny_model_dir, docs, probes):
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    capsys.readouterr()
    cell = (tmp_path / "run" / "cells" / "base-seed0.json").read_bytes()
    probes.write_text(probes.read_text().replace("When was", "In which year was"))
    code, err = run(capsys, *_base_run(tmp_path, tiny_model_dir, docs, probes))
    assert code == 2 and "its cells ran on other data: the corpus or its probes changed" in err and "seed 0" in err
    _one_clean_line(err)
    assert (tmp_path / "run" / "cells" / "base-seed0.json").read_bytes() == cell
    fresh = _base_run(tmp_path, tiny_model_dir, docs, probes)
    fresh[2] = str(tmp_path / "run2")
    assert main(fresh) == 0


def test_a_killed_runs_temporaries_are_removed_on_resume(capsys, tmp_path, tiny_model_dir, docs, probes):
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    dead = 2**22 + 12345  # above any pid_max default: no such process
    import socket

    stale = tmp_path / "run" / "samples" / f".base-seed0.jsonl~{socket.gethostname()}~{dead}~abc.tmp"
    stale.write_text("half")
    alive = tmp_path / "run" / f".results.json~{socket.gethostname()}~{os.getpid()}~abc.tmp"
    alive.write_text("being written")
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    assert not stale.exists() and alive.exists()


def test_results_get_the_users_umask(capsys, tmp_path, tiny_model_dir, docs, probes):
    old = os.umask(0o022)
    try:
        assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run" / "results.json").stat().st_mode) == 0o644


@pytest.mark.parametrize("damage, named", [("config.yaml", "config.yaml:1: malformed YAML"),
                                           ("cells/base-seed0.json", "base-seed0.json:1: malformed JSON")])
def test_a_damaged_run_file_is_one_line_on_resume(capsys, tmp_path, tiny_model_dir, docs, probes, damage, named):
    assert main(_base_run(tmp_path, tiny_model_dir, docs, probes)) == 0
    capsys.readouterr()
    (tmp_path / "run" / damage).write_text("{broken: [")
    code, err = run(capsys, *_base_run(tmp_path, tiny_model_dir, docs, probes))
    assert code == 2 and named in err
    _one_clean_line(err)
