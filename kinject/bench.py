"""Run a suite: methods x seeds on one corpus, one evaluation, one results file.

The run directory::

    config.yaml            the resolved config (a re-run with the same config resumes; progress
                           bars may differ)
    cells/<method>-seed<s>.json   one finished (method, seed): metrics and costs
    samples/<method>-seed<s>.jsonl  every probe's prompt, prediction and score
    models/<method>-seed<s>/       the injected model (when save_models is true), the index (rag)
    results.json           aggregated over seeds (docs/results-schema.md)
    report.md              the comparison table and what was run
    report.html            the same, with charts (self-contained; ``kinject report DIR`` re-renders it)

Every file is written atomically; a cell that exists is never recomputed, so a run killed half-way
resumes where it stopped. A directory holding another run's config is refused, never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kinject.config import RunConfig, dump_config
from kinject.data.jsonl import atomic_write_text, write_json, write_jsonl
from kinject.data.loaders import load_corpus
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.evaluation.runner import evaluate
from kinject.hardware import dtype_name, precision, resolve_dtype
from kinject.methods import Injected, InjectRequest, get_method, resolve_methods
from kinject.models import load_model, resolve_model_path, save_injected
from kinject.report.aggregate import build_results, flatten_metrics
from kinject.report.files import write_run_reports
from kinject.training.trainer import check_master_weights, training_arguments


def _identity(config: Any) -> Any:
    """A loaded config.yaml as a run's identity: the display settings (``progress``) left out."""
    if isinstance(config, dict):
        return {k: _identity(v) for k, v in config.items() if k != "progress"}
    return config


def prepare_run_dir(out: Path, cfg: RunConfig) -> None:
    """Create ``out`` or check it holds this very config, progress bars aside (resume); refuse
    anything else."""
    text = dump_config(cfg)
    cfg_file = out / "config.yaml"
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a directory")
        if cfg_file.is_file():
            if _identity(yaml.safe_load(cfg_file.read_text())) != _identity(yaml.safe_load(text)):
                raise UserError(f"--out {out}: holds a run with a different config; choose another directory")
            return
        if any(out.iterdir()):
            raise UserError(f"--out {out}: exists, is not empty and is not a kinject run; choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_file, text)


def is_main_process() -> bool:
    """Rank 0 (or no distributed launch): the process that evaluates and writes files.

    Under ``accelerate launch``/torchrun every rank runs the same suite so that the Trainer can
    shard each training run; only rank 0 evaluates and writes, the others wait at the next
    training run's first collective.
    """
    return int(os.environ.get("RANK", "0")) == 0


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def inject(method: str, seed: int, corpus: Corpus, cfg: RunConfig, workdir: Path,
           inner: Injected | None = None) -> Injected:
    """Seed everything, load a fresh base model and inject ``corpus`` with ``method``.

    ``inner``: for a composition (``ft+rag``), its inner method's result from this seed, already
    in memory: only the modifier is applied (same seed, same model, no second training run).
    """
    spec = get_method(method)
    _seed_everything(seed)
    req = InjectRequest(load_model(cfg.model, cfg.model_dtype), corpus, cfg, seed, workdir)
    if inner is not None and spec.wrap is not None:
        injected = spec.wrap(inner, req)
        injected.info = {**injected.info, "reused": spec.inner}
        return injected
    return spec.fn(req)


def run_cell(method: str, seed: int, corpus: Corpus, cfg: RunConfig, out: Path,
             inner: Injected | None = None) -> tuple[dict[str, Any], Injected]:
    """Inject (see :func:`inject`), evaluate, write samples; return the cell and the result."""
    start = time.perf_counter()
    workdir = out / "models" / f"{method}-seed{seed}"
    injected = inject(method, seed, corpus, cfg, workdir, inner)
    if not is_main_process():
        return {}, injected
    eval_start = time.perf_counter()
    metrics, samples = evaluate(injected.model, injected.tokenizer, corpus, cfg.eval, injected.context)
    eval_seconds = time.perf_counter() - eval_start
    write_jsonl(out / "samples" / f"{method}-seed{seed}.jsonl", samples)
    if cfg.save_models and injected.train_steps:
        save_injected(injected.model, injected.tokenizer, workdir, cfg.model, merged=cfg.save_merged)
    cell = {
        "method": method,
        "seed": seed,
        "metrics": flatten_metrics(metrics),
        "cost": {
            "train_tokens": injected.train_tokens,
            "train_seconds": injected.train_seconds,
            "train_steps": injected.train_steps,
            "trainable_params": injected.trainable_params,
            "index_seconds": injected.index_seconds,
            "eval_seconds": eval_seconds,
            "wall_seconds": time.perf_counter() - start,
        },
        "precision": {"weights": dtype_name(next(injected.model.parameters()).dtype),
                      "train": precision(cfg.train.bf16) if injected.train_steps else None,
                      "eval": precision(cfg.eval.bf16)},
        "info": injected.info,
    }
    return cell, injected


def run_bench(cfg: RunConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every (method, seed) not already done in ``out``; write results.json, report.md and report.html."""
    methods = resolve_methods(cfg.methods)
    if not cfg.seeds:
        raise UserError("seeds: give at least one seed")
    resolve_dtype(cfg.model_dtype)
    if any(get_method(m).trains for m in methods):  # train.* checked before any work
        with tempfile.TemporaryDirectory() as tmp:
            training_arguments(cfg.train, tmp, 0, 1)
        check_master_weights(cfg.train)
    corpora = {seed: load_corpus(cfg.data, seed) for seed in cfg.seeds}
    for corpus in corpora.values():
        for method in methods:
            check = get_method(method).check
            if check is not None:
                check(corpus, cfg)
    main = is_main_process()
    if main:
        prepare_run_dir(out, cfg)
    cells: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in methods}
    inners = {get_method(m).inner for m in methods}
    for seed, corpus in corpora.items():
        held: dict[str, Injected] = {}  # results a later composition of this seed builds on
        for method in methods:
            cell_file = out / "cells" / f"{method}-seed{seed}.json"
            if cell_file.is_file():
                cells[method][seed] = json.loads(cell_file.read_text())
                log(f"[seed {seed}] {method}: done earlier, kept")
                continue
            log(f"[seed {seed}] {method}: injecting and evaluating")
            cell, injected = run_cell(method, seed, corpus, cfg, out, held.get(get_method(method).inner or ""))
            if method in inners:
                held[method] = injected
            if main:
                write_json(cell_file, cell)
                cells[method][seed] = cell
    if not main:
        return {}
    hashes = {str(seed): c.content_hash() for seed, c in corpora.items()}
    last = corpora[cfg.seeds[-1]]
    data = {"name": last.name, "source": cfg.data.source, "documents": len(last.documents),
            "probes": len(last.probes), "generated_probes": sum(1 for p in last.probes if p.generated),
            "hash": hashes}
    model = {"name": cfg.model, "path": resolve_model_path(cfg.model)}
    results = build_results(cells, config=cfg.to_dict(), model=model, data=data)
    write_json(out / "results.json", results)
    write_run_reports(out, results)
    return results
