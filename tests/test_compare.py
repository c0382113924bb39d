"""`kinject compare`: runs merged by seed, labels for a method several runs hold, paired differences."""

import json

import pytest

from kinject.cli import main
from kinject.report.aggregate import build_results


def _cell(method: str, seed: int, acc: float) -> dict:
    return {"method": method, "seed": seed, "metrics": {"qa.accuracy": acc, "mcq.acc": acc},
            "cost": {"train_seconds": 10.0}, "precision": {"train": "fp32", "eval": "fp32"}, "info": {}}


def _run(path, accs: dict[str, dict[int, float]], corpus="h"):
    """A finished run directory whose cells have the given QA accuracy {method: {seed: acc}}."""
    cells = {m: {s: _cell(m, s, a) for s, a in per_seed.items()} for m, per_seed in accs.items()}
    seeds = sorted({s for per_seed in accs.values() for s in per_seed})
    path.mkdir(parents=True)
    results = build_results(cells, config={}, model={"name": "tiny", "path": "/m"},
                            data={"name": "builtin", "documents": 3, "probes": 4,
                                  "hash": {str(s): f"{corpus}{s}" for s in seeds}})
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_per_seed_runs_merge_and_a_shared_method_is_named_by_its_run(tmp_path, capsys):
    dirs = []
    for seed, (ft, lapael, oracle) in {0: (.2, .3, .5), 1: (.4, .4, .5)}.items():
        dirs.append(_run(tmp_path / f"s{seed}" / "main", {"ft": {seed: ft}, "lapael": {seed: lapael}}))
        dirs.append(_run(tmp_path / f"s{seed}" / "oracle", {"lapael": {seed: oracle}}))
    assert main(["compare", *map(str, dirs), "--pair", "main/lapael,ft", "--pair", "oracle/lapael,main/lapael",
                 "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| ft | 0.300 ± 0.100 |" in out  # MCQ column: seeds 0 and 1 merged
    assert "| main/lapael vs ft | +0.050 ± 0.050 |" in out  # paired: (.1 + 0) / 2, stderr .05
    assert "| oracle/lapael vs main/lapael | +0.150 ± 0.050 |" in out
    assert "seeds: 0, 1" in out


def test_runs_of_disjoint_seeds_merge_under_the_method_s_name(tmp_path, capsys):
    first = _run(tmp_path / "plain", {"ft": {0: .2}, "rag": {0: .8}})
    second = _run(tmp_path / "plain-w2", {"ft": {1: .4}, "rag": {1: .6}})
    assert main(["compare", str(first), str(second), "--pair", "rag,ft", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| ft | 0.300 ± 0.100 |" in out and "| rag vs ft | +0.400 ± 0.200 |" in out and "plain-w2/" not in out


def test_runs_on_different_corpora_for_one_seed_are_refused(tmp_path, capsys):
    a = _run(tmp_path / "a", {"ft": {0: .2}})
    b = _run(tmp_path / "b", {"lapael": {0: .3}}, corpus="other")
    assert main(["compare", str(a), str(b)]) == 2
    assert "ran seed 0 on different corpora" in capsys.readouterr().err


@pytest.mark.parametrize("pair, message", [("ft", "expected two method names"),
                                           ("ft,rag", "no method 'rag' in these runs (they hold: ft, lapael)")])
def test_a_bad_pair_names_itself(tmp_path, capsys, pair, message):
    a = _run(tmp_path / "a", {"ft": {0: .2}, "lapael": {0: .3}})
    assert main(["compare", str(a), "--pair", pair]) == 2
    assert message in capsys.readouterr().err


def test_a_directory_that_is_not_a_finished_run_is_refused(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "holds no results.json" in capsys.readouterr().err
