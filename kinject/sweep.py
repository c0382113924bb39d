"""A suite run once per value of a config key, and each metric's curve against that value.

    kinject bench --sweep para.k=0,1,2,5,10 --methods ft-para --seeds 3 --out runs/para-k

Several ``--sweep`` keys are zipped: point i sets every key to its i-th value (e.g.
``--sweep para.k=0,4 --sweep para.epochs=10,2`` holds the number of training steps fixed). Values
are YAML scalars or lists, separated by commas outside brackets (``eval.kinds=[qa],[qa,mcq]``).
The first key is the curve's x axis. The sweep directory::

    sweep.yaml            the base config and the sweep (a re-run with the same ones resumes)
    <i>_<key>=<value>/    an ordinary run directory per point (cells resume one by one)
    sweep.json            per point and method: seeds, mean and standard error of every measure
    sweep.png             each measure against the first key, one line per method (kinject.report.charts)
    report.html           the sweep's table and chart, linking each point's own report.html
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kinject.config import (
    RunConfig,
    apply_mapping,
    config_diff,
    parse_override,
    read_config_file,
    same_config,
    saved_config,
)
from kinject.data.jsonl import atomic_write_text, write_json
from kinject.errors import UserError
from kinject.hardware import is_main_process
from kinject.report.files import write_sweep_reports

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SweepAxis:
    """One swept key and its values as typed on the command line."""

    key: str
    raw: list[str]


def split_values(text: str) -> list[str]:
    """``"0,1,[a,b]"`` -> ``["0", "1", "[a,b]"]``: commas inside brackets or braces do not split."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def parse_sweep(texts: list[str]) -> list[SweepAxis]:
    """Parse ``--sweep key=v1,v2`` options (the values are checked by :func:`point_configs`)."""
    axes: list[SweepAxis] = []
    for text in texts:
        if "=" not in text:
            raise UserError(f"--sweep {text!r}: give key=value1,value2,...")
        key, rest = (s.strip() for s in text.split("=", 1))
        raw = split_values(rest)
        if any(not r for r in raw):
            raise UserError(f"--sweep {key}: an empty value in {rest!r}")
        if key in {a.key for a in axes}:
            raise UserError(f"--sweep {key}: given twice")
        if key in ("seeds", "methods"):
            raise UserError(f"--sweep {key}: use --{key}; a sweep varies one setting of the methods")
        axes.append(SweepAxis(key, raw))
    if len({len(a.raw) for a in axes}) > 1:
        raise UserError("--sweep: zipped keys need as many values each ("
                        + ", ".join(f"{a.key}: {len(a.raw)}" for a in axes) + ")")
    return axes


def setting(cfg: RunConfig, key: str) -> Any:
    """The value of dotted ``key`` in ``cfg``."""
    target: Any = cfg
    for part in key.split("."):
        target = getattr(target, part)
    return target


def point_label(axes: list[SweepAxis], i: int) -> str:
    return ",".join(f"{a.key}={a.raw[i]}" for a in axes)


def point_dir(axes: list[SweepAxis], i: int) -> str:
    """A directory name for point ``i``: its index, then its settings with unsafe characters as ``_``."""
    return f"{i}_" + re.sub(r"[^A-Za-z0-9._=,+-]", "_", point_label(axes, i))


def prepare_sweep_dir(out: Path, cfg: RunConfig, axes: list[SweepAxis]) -> None:
    """Create ``out`` or check it holds this very sweep (resume); refuse anything else."""
    sweep = {a.key: a.raw for a in axes}
    marker = out / "sweep.yaml"
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a directory")
        if marker.is_file():
            saved = read_config_file(marker)
            if saved.get("sweep") != sweep:
                raise UserError(f"--out {out}: holds a different sweep ({saved.get('sweep')} -> {sweep}); choose "
                                "another directory")
            if not isinstance(saved.get("config"), dict):
                raise UserError(f"--out {out}: its sweep.yaml records no config mapping (a damaged marker); choose "
                                "another directory")
            config = saved_config(saved["config"])
            if not same_config(config, cfg):
                raise UserError(f"--out {out}: holds this sweep with a different config ({config_diff(config, cfg)}); "
                                "choose another directory, or give the recorded values to resume it")
            return
        if any(out.iterdir()):
            raise UserError(f"--out {out}: exists, is not empty and is not a kinject sweep; choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, yaml.safe_dump({"sweep": sweep, "config": cfg.to_dict()}, sort_keys=False))


def point_configs(cfg: RunConfig, axes: list[SweepAxis]) -> list[RunConfig]:
    """The base config with each point's settings applied (a bad key or value fails here, before any run)."""
    configs = []
    for i in range(len(axes[0].raw)):
        point = copy.deepcopy(cfg)
        for a in axes:
            apply_mapping(point, dict([parse_override(f"{a.key}={a.raw[i]}")]))
        configs.append(point)
    return configs


def summarise(axes: list[SweepAxis], configs: list[RunConfig], dirs: list[str],
              results: list[dict[str, Any]]) -> dict[str, Any]:
    """sweep.json: each point's settings and, per method, its seeds, means and standard errors."""
    points = []
    for i, (point, d, res) in enumerate(zip(configs, dirs, results)):
        methods = {name: {k: e[k] for k in ("seeds", "mean", "stderr")} for name, e in res["methods"].items()}
        points.append({"label": point_label(axes, i), "settings": {a.key: setting(point, a.key) for a in axes},
                       "dir": d, "methods": methods})
    return {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "axes": [{"key": a.key, "values": [setting(c, a.key) for c in configs]} for a in axes],
        "seeds": sorted({s for r in results for s in r["seeds"]}),
        "normalisation": results[0]["normalisation"],
        "points": points,
    }


def run_sweep(cfg: RunConfig, axes: list[SweepAxis], out: Path,
              run: Callable[[RunConfig, Path], dict[str, Any]], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``run(point_config, point_dir)`` (the bench) for every point; write sweep.json, sweep.png
    and report.html.

    Returns the summary (sweep.json's content), or {} on a non-zero rank of a distributed launch.
    """
    configs = point_configs(cfg, axes)
    main = is_main_process()
    if main:
        prepare_sweep_dir(out, cfg, axes)
    dirs = [point_dir(axes, i) for i in range(len(configs))]
    results = []
    for i, (point, d) in enumerate(zip(configs, dirs)):
        log(f"== sweep point {i + 1}/{len(configs)}: {point_label(axes, i)}")
        results.append(run(point, out / d))
    if not main:  # a non-zero rank of a distributed launch: rank 0 writes
        return {}
    summary = summarise(axes, configs, dirs, results)
    write_json(out / "sweep.json", summary)
    write_sweep_reports(out, summary)
    return summary
