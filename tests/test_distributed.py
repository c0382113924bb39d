"""Distributed training through torchrun and accelerate launch (2 CPU processes, gloo), and several
workers sharing one run directory (claims)."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_bench import TINY_WORLD

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).parent / "fixtures"
WORLD = [*TINY_WORLD, "train.batch_size=1", "train.epochs=2", "retrieval.progress=false"]


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "KINJECT": str(BIN / "kinject"), **extra}


def _cell(run: Path, name: str) -> dict:
    return json.loads((run / "cells" / f"{name}.json").read_text())


def _steps_per_epoch(texts: int, batch_size: int, world: int) -> int:
    """The documented count (docs/usage.md): each rank takes every world-th batch, padded to equal
    length, so an epoch is ceil(ceil(chunks / batch_size) / world) optimizer steps (grad_accum 1)."""
    return math.ceil(math.ceil(texts / batch_size) / world)


def test_torchrun_two_processes_train_data_parallel_and_only_rank_0_writes(tiny_model_dir, tmp_path):
    args = [f"model={tiny_model_dir}", "methods=[base,ft,ft+rag,ft+replay]", "replay.ratio=1.0", *WORLD]
    proc = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "--no-python",
                           str(FIXTURES / "rank_bench.sh"), *args],
                          env=_env(OUT=str(tmp_path / "run"), CACHE=str(tmp_path / "cache")),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "run-1").exists()  # rank 1 trained, and wrote nothing: no cell, model, index
    # the replay texts were generated once, by rank 0 (its own cache), and trained on both ranks
    generated = [list((tmp_path / f"cache-{rank}" / "distill").rglob("*.json")) for rank in (0, 1)]
    assert generated[0] and not generated[1]
    run = tmp_path / "run-0"
    ft, ft_rag = _cell(run, "ft-seed0"), _cell(run, "ft+rag-seed0")
    assert ft["launch"]["world_size"] == 2 and ft["launch"]["device"] == "cpu"
    assert ft["cost"]["train_steps"] == 2 * _steps_per_epoch(ft["info"]["texts"], 1, 2)
    assert ft_rag["info"]["reused"] == "ft" and (run / "models" / "ft+rag-seed0" / "index").is_dir()
    assert json.loads((run / "launch.json").read_text())["world_size"] == 2
    # the same directory resumed by a single process is refused: its batches would differ
    resumed = subprocess.run([str(BIN / "kinject"), "bench", "--out", str(run), *args], env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 2 and "world_size 2 -> 1" in resumed.stderr, resumed.stderr[-2000:]


def test_accelerate_launch_runs_two_cpu_processes(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([str(BIN / "accelerate"), "launch", "--config_file",
                           str(Path(__file__).parents[1] / "configs" / "accelerate" / "ddp.yaml"),
                           "-m", "kinject", "bench", "--out", str(run), f"model={tiny_model_dir}",
                           "methods=[ft]", *WORLD], env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ft = _cell(run, "ft-seed0")
    assert ft["launch"]["world_size"] == 2
    assert ft["cost"]["train_steps"] == 2 * _steps_per_epoch(ft["info"]["texts"], 1, 2) < 2 * ft["info"]["texts"]


def _timeless(doc):
    """A results document without what differs between two runs of the same cells: wall times."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if "seconds" not in k and k not in ("created", "train s")}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


def test_two_workers_share_a_run_directory_and_match_one_worker(tiny_model_dir, tmp_path):
    from kinject import bench
    from kinject.config import load_config

    args = [f"model={tiny_model_dir}", "methods=[base,ft,ft-para]", "seeds=[0,1]", *TINY_WORLD]
    run = tmp_path / "shared"
    workers = [subprocess.Popen([str(BIN / "kinject"), "bench", "--out", str(run), *args], env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    started = [line for log in logs for line in log.splitlines() if "injecting and evaluating" in line]
    assert sorted(started) == sorted(f"[seed {s}] {m}: injecting and evaluating"
                                     for s in (0, 1) for m in ("base", "ft", "ft-para"))  # each cell exactly once
    assert not list((run / "claims").glob("*.claim"))
    single = bench.run_bench(load_config(None, args), tmp_path / "single", log=lambda m: None)
    merged = json.loads((run / "results.json").read_text())
    assert _timeless(merged)["methods"] == _timeless(single)["methods"]
    assert _timeless(merged) == _timeless(json.loads((tmp_path / "single" / "results.json").read_text()))


def test_kinject_report_merges_the_cells_workers_left(tiny_model_dir, tmp_path):
    from kinject import bench
    from kinject.cli import main
    from kinject.config import load_config

    run = tmp_path / "run"
    bench.run_bench(load_config(None, [f"model={tiny_model_dir}", "methods=[base,ft]", *TINY_WORLD]), run,
                    log=lambda m: None)
    before = json.loads((run / "results.json").read_text())
    (run / "results.json").unlink()  # as if the workers had all stopped before the last wrote it
    assert main(["report", str(run)]) == 0
    assert _timeless(json.loads((run / "results.json").read_text())) == _timeless(before)
    (run / "cells" / "ft-seed0.json").unlink()
    assert main(["report", str(run)]) == 2  # a cell missing: named, and how to finish it


def test_a_dead_workers_claim_is_taken_over_and_a_live_one_is_not(tmp_path):
    from kinject.claims import held, try_claim

    live = try_claim(tmp_path, "ft-seed0")
    assert live is not None and try_claim(tmp_path, "ft-seed0") is None  # held by this live process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = json.loads(live.read_text()) | {"pid": int(dead.stdout)}  # a worker on this host that has exited
    live.write_text(json.dumps(owner))
    taken = try_claim(tmp_path, "ft-seed0")
    assert taken == live and json.loads(taken.read_text())["pid"] == os.getpid()
    taken.write_text(json.dumps({"host": "elsewhere", "pid": 1}))  # another host: judged by its heartbeat
    assert try_claim(tmp_path, "ft-seed0", stale_after=60) is None
    old = time.time() - 120
    os.utime(taken, (old, old))
    assert try_claim(tmp_path, "ft-seed0", stale_after=60) is not None
    with held(taken, heartbeat=0.05):
        os.utime(taken, (old, old))
        time.sleep(0.3)
        assert time.time() - taken.stat().st_mtime < 5  # the heartbeat keeps it fresh
    assert not taken.exists()


def test_workers_submitted_through_submitit_finish_the_suite(tiny_model_dir, tmp_path, capsys):
    from kinject.cli import main

    run = tmp_path / "run"
    code = main(["bench", "--out", str(run), "--workers", "2", "--cluster", "local", f"model={tiny_model_dir}",
                 "methods=[base,ft]", "seeds=[0,1]", *TINY_WORLD])
    assert code == 0
    results = json.loads((run / "results.json").read_text())
    assert {m: sorted(e["per_seed"]) for m, e in results["methods"].items()} == {"base": ["0", "1"], "ft": ["0", "1"]}
    logs = "".join(p.read_text() for p in (run / "workers").rglob("*_log.err"))
    assert sum(line.endswith("injecting and evaluating") for line in logs.splitlines()) == 4
    assert "2 workers" in capsys.readouterr().out
    assert main(["bench", "--out", str(tmp_path / "x"), "--workers", "2", "--cluster", "nowhere"]) == 2
    assert not (tmp_path / "x").exists()
    # a sweep: each point's cells spread over its own two workers
    sweep = tmp_path / "sweep"
    assert main(["bench", "--out", str(sweep), "--workers", "2", "--cluster", "local", f"model={tiny_model_dir}",
                 "methods=[base]", "seeds=[0,1]", *TINY_WORLD, "--sweep", "eval.max_new_tokens=4,8"]) == 0
    points = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(points) == 2 and all(len(list((p / "workers").rglob("*_log.err"))) == 2 for p in points)
    assert all(sorted(json.loads((p / "results.json").read_text())["methods"]["base"]["per_seed"]) == ["0", "1"]
               for p in points)
    assert (sweep / "sweep.json").is_file() and "sweep directory" in capsys.readouterr().out
