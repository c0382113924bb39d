"""Spread a suite's cells over workers with submitit: a SLURM job array, or processes on this machine.

Each worker is a plain ``kinject bench`` on the shared run directory (see :func:`kinject.bench.run_bench`:
units are claimed atomically, a dead worker's claim is taken over). ``kinject bench --workers N``
checks the config, creates the run directory, submits N workers as one array
(``submitit.AutoExecutor``: SLURM where ``sbatch`` exists, else local processes), waits for them
and merges what they wrote. If the submitting process is stopped, the workers go on; ``kinject
report DIR`` merges later, and ``kinject bench`` on the same directory finishes what is left.
Worker logs are under ``DIR/workers/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinject.config import RunConfig
from kinject.data.jsonl import read_json
from kinject.errors import UserError

CLUSTERS = ("auto", "local", "slurm")


def _worker(cfg: RunConfig, out: Path) -> int:
    """One worker (runs in the submitted job): the cells it claimed; returns how many cells are on disk."""
    import sys

    import kinject.methods  # noqa: F401  (registers the methods)
    from kinject.bench import run_bench

    run_bench(cfg, out, log=lambda m: print(m, file=sys.stderr, flush=True))
    return len(list((out / "cells").glob("*.json")))


def parse_options(items: list[str]) -> dict[str, Any]:
    """``key=value`` submitit parameters (values read as YAML: ``timeout_min=240``, ``slurm_partition=gpu``)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--worker-option {item!r} is not key=value")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


def check_workers(n: int, cluster: str) -> None:
    """Refuse a worker count below 1 or an unknown cluster (before anything is written)."""
    if n < 1:
        raise UserError(f"--workers must be >= 1, got {n}")
    if cluster not in CLUSTERS:
        raise UserError(f"--cluster {cluster!r} is not one of {', '.join(CLUSTERS)}")


def run_workers(cfg: RunConfig, out: Path, n: int, cluster: str, options: dict[str, Any],
                log: Callable[[str], None]) -> dict[str, Any]:
    """Submit ``n`` workers on ``out`` and wait for them; returns the merged results. A sweep
    (``kinject bench --sweep``) calls this once per point, so each point's cells are spread."""
    import submitit

    from kinject.bench import check_run, merge_run, prepare_run_dir

    check_workers(n, cluster)
    check_run(cfg)
    prepare_run_dir(out, cfg)
    executor = submitit.AutoExecutor(folder=out / "workers" / "%j", cluster=None if cluster == "auto" else cluster)
    try:
        executor.update_parameters(name="kinject-bench", **options)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--worker-option: {str(exc).splitlines()[0]}") from None
    jobs = executor.map_array(_worker, [cfg] * n, [out] * n)
    log(f"{n} workers submitted ({executor.cluster}, job {jobs[0].job_id.split('_')[0]}); logs under {out / 'workers'}")
    failed = []
    for job in jobs:
        try:
            job.result()
        except Exception as exc:  # a worker's own failure: the rest of the array goes on
            failed.append(f"{job.job_id}: {str(exc).strip().splitlines()[-1]}")
    if failed:
        raise UserError(f"{len(failed)} of {n} workers failed ({'; '.join(failed)}); logs under {out / 'workers'}")
    merge_run(out)
    return read_json(out / "results.json")
