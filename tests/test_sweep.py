"""--sweep: parsing, one run directory per point, sweep.json/png, resume and refusal, bad input."""

import json

import pytest
import yaml

from kinject.cli import main
from kinject.config import load_config
from kinject.errors import UserError
from kinject.report.render import sweep_table
from kinject.sweep import parse_sweep, point_configs, point_dir, run_sweep, split_values
from tests.test_bench import TINY_WORLD


def test_values_split_on_commas_outside_brackets():
    assert split_values("0, 1,2.5") == ["0", "1", "2.5"]
    assert split_values("[qa],[qa, mcq],{a: 1, b: 2}") == ["[qa]", "[qa, mcq]", "{a: 1, b: 2}"]


def test_points_apply_each_value_and_zip_keys():
    axes = parse_sweep(["para.k=0,2,5", "para.epochs=10,3.33,null"])
    configs = point_configs(load_config(), axes)
    assert [c.para.k for c in configs] == [0, 2, 5]
    assert [c.para.epochs for c in configs] == [10.0, 3.33, None]
    assert all(c.train.lr == load_config().train.lr for c in configs)
    assert point_dir(axes, 1) == "1_para.k=2,para.epochs=3.33"
    assert point_dir(parse_sweep(["lapael.paraphraser=runs/a b"]), 0) == "0_lapael.paraphraser=runs_a_b"


@pytest.mark.parametrize("sweep, message", [
    (["para.k"], "give key=value1"),
    (["para.k=0,,2"], "an empty value"),
    (["para.k=0,1", "para.k=2,3"], "given twice"),
    (["para.k=0,1", "train.lr=1e-4"], "as many values"),
    (["seeds=0,1"], "use --seeds"),
])
def test_bad_sweeps_are_refused(sweep, message):
    with pytest.raises(UserError, match=message):
        parse_sweep(sweep)


@pytest.mark.parametrize("sweep, message", [(["para.kk=0,1"], "unknown config key 'para.kk'"),
                                            (["para.k=0,many"], "'para.k': expected int")])
def test_bad_keys_and_values_fail_before_any_run(sweep, message, tmp_path):
    calls = []
    with pytest.raises(UserError, match=message):
        run_sweep(load_config(), parse_sweep(sweep), tmp_path / "s", lambda c, d: calls.append(d) or {})
    assert calls == [] and not (tmp_path / "s").exists()


def _fake_results(k: int) -> dict:
    """A results document as run_bench returns one: accuracy rising with k (a fake run)."""
    entry = {"seeds": [0, 1], "mean": {"qa.accuracy": 0.1 * k, "mcq.acc": 0.5}, "stderr": {"qa.accuracy": 0.01}}
    return {"seeds": [0, 1], "normalisation": "test", "methods": {"ft-para": entry}}


def test_sweep_writes_summary_and_plot_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    cfg = load_config()
    seen = []

    def run(point, d):
        seen.append((point.para.k, d.name))
        return _fake_results(point.para.k)

    summary = run_sweep(cfg, parse_sweep(["para.k=0,2,5"]), out, run, log=lambda m: None)
    assert seen == [(0, "0_para.k=0"), (2, "1_para.k=2"), (5, "2_para.k=5")]
    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk == summary and on_disk["axes"] == [{"key": "para.k", "values": [0, 2, 5]}]
    assert [p["methods"]["ft-para"]["mean"]["qa.accuracy"] for p in on_disk["points"]] == pytest.approx([0, .2, .5])
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<a href="2_para.k=5/report.html">para.k=5</a>' in (out / "report.html").read_text()
    table = sweep_table(summary)
    assert "para.k" in table.splitlines()[0] and "0.500 ± 0.010" in table and "seeds: 0, 1" in table
    run_sweep(cfg, parse_sweep(["para.k=0,2,5"]), out, run, log=lambda m: None)  # the same sweep resumes
    with pytest.raises(UserError, match="different sweep"):
        run_sweep(cfg, parse_sweep(["para.k=0,2"]), out, run, log=lambda m: None)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="not a kinject sweep"):
        run_sweep(cfg, parse_sweep(["para.k=0"]), other, run, log=lambda m: None)
    assert (other / "mine.txt").read_text() == "keep"


def test_sweep_written_before_a_key_existed_resumes_and_a_changed_setting_is_refused(tmp_path):
    out = tmp_path / "sweep"
    cfg = load_config()
    run_sweep(cfg, parse_sweep(["para.k=0,2"]), out, lambda p, d: _fake_results(p.para.k), log=lambda m: None)
    marker = yaml.safe_load((out / "sweep.yaml").read_text())
    del marker["config"]["distill"]["average"]  # as kinject wrote it before distill.average existed
    marker["config"]["eval"]["progress"] = not cfg.eval.progress  # a display setting is no part of the identity
    (out / "sweep.yaml").write_text(yaml.safe_dump(marker, sort_keys=False))
    seen = []
    run_sweep(cfg, parse_sweep(["para.k=0,2"]), out, lambda p, d: seen.append(d.name) or _fake_results(p.para.k),
              log=lambda m: None)
    assert seen == ["0_para.k=0", "1_para.k=2"]
    with pytest.raises(UserError, match=r"this sweep with a different config \(train\.lr 0\.0003 -> 1e-05\)"):
        run_sweep(load_config(overrides=["train.lr=1e-5"]), parse_sweep(["para.k=0,2"]), out, lambda p, d: {},
                  log=lambda m: None)
    marker["config"]["removed_since"] = 1  # a key kinject no longer has: another config
    (out / "sweep.yaml").write_text(yaml.safe_dump(marker, sort_keys=False))
    with pytest.raises(UserError, match=r"different config \(the recorded config holds a key this kinject no"):
        run_sweep(cfg, parse_sweep(["para.k=0,2"]), out, lambda p, d: {}, log=lambda m: None)
    del marker["config"]  # a damaged marker: no config mapping at all
    (out / "sweep.yaml").write_text(yaml.safe_dump(marker, sort_keys=False))
    with pytest.raises(UserError, match=r"sweep\.yaml records no config mapping"):
        run_sweep(cfg, parse_sweep(["para.k=0,2"]), out, lambda p, d: {}, log=lambda m: None)


def test_cli_sweep_runs_the_real_suite_per_value(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["bench", "--methods", "ft-para", "--out", str(out), "--sweep", "para.k=0,2",
                 f"model={tiny_model_dir}", *TINY_WORLD])
    assert code == 0
    printed = capsys.readouterr().out
    assert "sweep.png" in printed
    summary = json.loads((out / "sweep.json").read_text())
    tokens = [p["methods"]["ft-para"]["mean"]["train_tokens"] for p in summary["points"]]
    assert 0 < tokens[0] < tokens[1]  # two paraphrases per document add training text
    for p in summary["points"]:
        assert (out / p["dir"] / "results.json").is_file()


def test_cli_bad_sweep_is_one_line_and_exit_2(capsys, tmp_path):
    code = main(["bench", "--out", str(tmp_path / "s"), "--sweep", "train.lrr=1,2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "train.lrr" in err
    assert not (tmp_path / "s").exists()
