"""Run a suite: methods x seeds on one corpus, one evaluation, one results file.

The run directory::

    config.yaml            the resolved config (a re-run with the same config resumes; progress
                           bars may differ)
    launch.json            world size, device, its name, dtype (a resume under another is refused)
    data.json              each seed's corpus hash (a resume on a changed corpus or probes file is refused)
    cells/<method>-seed<s>.json   one finished (method, seed): metrics, costs, precision, launch
    claims/<unit>.claim    a unit some worker is running now (kinject/claims.py)
    samples/<method>-seed<s>.jsonl  every probe's prompt, prediction and score
    models/<method>-seed<s>/       the injected model or LoRA adapter (save_models), the index (rag)
    results.json           aggregated over seeds (docs/results-schema.md)
    report.md              the comparison table and what was run
    report.html            the same, with charts (self-contained; ``kinject report DIR`` re-renders it)

Every file is written atomically; a cell that exists is never recomputed, so a run killed half-way
resumes where it stopped (temporaries the killed process left are removed). A directory holding
another run's config, launch or data is refused, never overwritten, unless it holds no work yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinject.artifacts import check_writable, remove_stale_temporaries, staged_directory
from kinject.checks import check_section
from kinject.claims import held, try_claim
from kinject.config import (
    RunConfig,
    config_diff,
    dump_config,
    load_config,
    read_config_file,
    same_config,
    saved_config,
)
from kinject.data.builtin.general import general_mcq_probes, general_qa_probes
from kinject.data.builtin.retention import retention_probes
from kinject.data.jsonl import atomic_write_text, read_json, write_json, write_jsonl
from kinject.data.loaders import load_corpus
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.evaluation.drift import BaseReference
from kinject.evaluation.runner import CORPUS_KINDS, evaluate, summarise
from kinject.generation.cache import pay_once
from kinject.hardware import (
    dtype_name,
    is_main_process,
    launch_description,
    precision,
    resolve_bf16,
    resolve_dtype,
    shared,
    world_size,
)
from kinject.methods import Injected, InjectRequest, get_method, resolve_methods
from kinject.methods.finetune import merged
from kinject.models import LoadedModel, load_model, resolve_model_path, save_injected
from kinject.report.aggregate import build_results, flatten_metrics
from kinject.report.files import write_run_reports
from kinject.stream import split_updates, stream_summary
from kinject.training.trainer import check_sharded_launch, training_arguments


def _started(out: Path) -> bool:
    """Whether a run directory holds work: a finished cell, or a unit some worker claimed."""
    return any((out / d).is_dir() and any(not p.name.startswith(".") for p in (out / d).iterdir())
               for d in ("cells", "claims"))


def prepare_run_dir(out: Path, cfg: RunConfig) -> None:
    """Create ``out`` or check it holds this very config, progress bars and the report section
    aside, keys added to kinject since it was written read at their defaults (resume); refuse
    anything else. A run that stopped before its first cell (a bad model path, say) holds no
    work: its config gives way to the corrected one. Temporaries a killed run left are removed."""
    text = dump_config(cfg)
    cfg_file = out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    saved = saved_config(read_config_file(cfg_file)) if cfg_file.is_file() else None
    same = same_config(saved, cfg)  # False without a recorded config
    if cfg_file.is_file():
        if not same and _started(out):
            raise UserError(f"--out {out}: holds a run with a different config ({config_diff(saved, cfg)}); choose "
                            "another directory, or give the recorded values to resume it")
    elif out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):  # a worker's temporary aside
        raise UserError(f"--out {out}: exists, is not empty and is not a kinject run; choose another directory")
    check_writable(out)
    if same:
        remove_stale_temporaries(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    atomic_write_text(cfg_file, text)


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


def base_reference(cfg: RunConfig) -> BaseReference | None:
    """The base model's view of the general text, for eval kind ``general_kl`` (else None)."""
    if "general_kl" not in cfg.eval.kinds:
        return None
    return BaseReference(cfg.model, cfg.model_dtype, cfg.eval.batch_size, resolve_bf16(cfg.eval.bf16))


def run_cell(method: str, seed: int, corpus: Corpus, cfg: RunConfig, out: Path,
             inner: Injected | None = None) -> tuple[dict[str, Any], Injected]:
    """Inject (see :func:`inject`), evaluate, write samples; return the cell and the result."""
    start = time.perf_counter()
    workdir = out / "models" / cell_name(method, seed)
    injected = inject(method, seed, corpus, cfg, workdir, inner)
    eval_start = time.perf_counter()
    metrics, samples = evaluate(injected.model, injected.tokenizer, corpus, cfg.eval, injected.context,
                                base_reference(cfg))
    eval_seconds = time.perf_counter() - eval_start
    write_jsonl(out / "samples" / f"{cell_name(method, seed)}.jsonl", samples)
    if cfg.save_models and injected.train_steps:
        save_injected(injected.model, injected.tokenizer, workdir, cfg.model, merged=cfg.save_merged)
    return _cell(method, seed, flatten_metrics(metrics), _cost(injected, eval_seconds), injected, cfg, start), injected


def _cost(injected: Injected, eval_seconds: float) -> dict[str, float]:
    """What one injection and its evaluation cost (the cell's ``cost`` less the whole-cell fields)."""
    return {"train_tokens": injected.train_tokens, "train_seconds": injected.train_seconds,
            "train_steps": injected.train_steps, "index_seconds": injected.index_seconds,
            "teacher_tokens": injected.teacher_tokens, "teacher_seconds": injected.teacher_seconds,
            "generation_tokens": injected.generation_tokens, "generation_seconds": injected.generation_seconds,
            "eval_seconds": eval_seconds}


def _cell(method: str, seed: int, metrics: dict[str, float], cost: dict[str, float], injected: Injected,
          cfg: RunConfig, start: float) -> dict[str, Any]:
    """A cell's record: its metrics, ``cost`` with the trainable parameters and the wall seconds
    since ``start``, the precision and launch it ran under, and the method's info."""
    dtype = next(injected.model.parameters()).dtype
    return {
        "method": method,
        "seed": seed,
        "metrics": metrics,
        "cost": {**cost, "trainable_params": injected.trainable_params, "wall_seconds": time.perf_counter() - start},
        "precision": {"weights": dtype_name(dtype),
                      "train": precision(cfg.train.bf16) if cost["train_steps"] else None,
                      "eval": precision(cfg.eval.bf16)},
        "launch": launch_description(dtype),
        "info": injected.info,
    }


def run_stream_cell(method: str, seed: int, corpus: Corpus, cfg: RunConfig, out: Path
                    ) -> tuple[dict[str, Any], Injected]:
    """One (method, seed) of a stream (``stream.updates`` > 1, see :mod:`kinject.stream`): the
    updates injected one after another, the model evaluated after each on every update so far
    and on the general kinds; the cell holds the final model's metrics on every probe, the
    ``stream.*`` summary, and under ``stream`` the matrix, the general metrics, the cost and the
    method's info of each update (the cell's ``info`` is the last update's).

    After each update but the last, the model and the records so far are kept under
    ``models/<cell>/partial`` (one process only), so a cell stopped mid-stream resumes at the next
    update; each update seeds everything from the seed and its number, so a resumed stream trains
    as an uninterrupted one. The partial state is removed when the cell is written. A generated
    or teacher item used again at a later update (``+anchor``'s texts, ``+retrain``'s targets of
    earlier updates) costs its tokens and seconds once over the stream (:func:`pay_once`)."""
    start = time.perf_counter()
    spec = get_method(method)
    updates = split_updates(corpus, cfg.stream, seed)
    cell_dir = out / "models" / cell_name(method, seed)  # each update's workdir, the partial state, the model
    partial = cell_dir / "partial"
    state: dict[str, list] = {"matrix": [], "general": [], "cost": [], "info": [], "paid": []}
    if world_size() == 1 and (partial / "state.json").is_file():  # resumed: the last kept update's model
        state = read_json(partial / "state.json")
        start -= state.get("seconds", 0.0)  # wall_seconds counts the updates run before the stop
        kept = load_model(str(partial / "model"), cfg.model_dtype)
        current = LoadedModel(kept.model, kept.tokenizer, cfg.model, resolve_model_path(cfg.model))
    else:
        current = load_model(cfg.model, cfg.model_dtype)
    frozen = load_model(cfg.model, cfg.model_dtype) if spec.reads_model else None
    reference = base_reference(cfg)
    own = [k for k in cfg.eval.kinds if k in CORPUS_KINDS]
    general = [k for k in cfg.eval.kinds if k not in CORPUS_KINDS]
    samples: list[dict[str, Any]] = []
    for i in range(len(state["matrix"]), len(updates)):
        update = updates[i]
        _seed_everything(seed * 1000 + i)
        req = InjectRequest(current, update, cfg, seed, cell_dir / f"update{i + 1}", frozen=frozen,
                            history=tuple(updates[:i]), stream_corpus=corpus,
                            earlier_workdir=cell_dir / f"update{i}" if i else None)
        paid = set(state.get("paid", []))  # generated and teacher items already counted in an earlier update
        with pay_once(paid):
            injected = spec.fn(req)  # a context (+rag, +oracle) covers every update so far: InjectRequest.seen
        state["paid"] = sorted(paid)
        eval_start = time.perf_counter()
        row = []
        for j, earlier in enumerate(updates[: i + 1]):
            metrics, records = evaluate(injected.model, injected.tokenizer, earlier,
                                        dataclasses.replace(cfg.eval, kinds=own), injected.context)
            row.append(flatten_metrics(metrics))
            if i == len(updates) - 1:
                samples += [r | {"update": j + 1} for r in records]
        final, general_records = evaluate(injected.model, injected.tokenizer, corpus, dataclasses.replace(
            cfg.eval, kinds=general), injected.context, reference) if general else ({}, [])
        state["matrix"].append(row)
        state["general"].append(flatten_metrics(final))
        state["cost"].append(_cost(injected, time.perf_counter() - eval_start))
        state["info"].append(injected.info)
        current = LoadedModel(merged(injected.model), injected.tokenizer, current.source, current.path)
        if i < len(updates) - 1 and world_size() == 1:
            with staged_directory(partial, replace=True) as tmp:
                current.model.save_pretrained(tmp / "model")
                current.tokenizer.save_pretrained(tmp / "model")
                write_json(tmp / "state.json", {**state, "seconds": time.perf_counter() - start})
    matrix, costs = state["matrix"], state["cost"]
    by_kind = {k: summarise(k, [r for r in samples if r["kind"] == k]) for k in own
               if any(r["kind"] == k for r in samples)}  # a kind with no probe gets no figure
    write_jsonl(out / "samples" / f"{cell_name(method, seed)}.jsonl", [*samples, *general_records])
    if cfg.save_models and any(c["train_steps"] for c in costs):  # whole: each update's LoRA adapter was merged
        save_injected(current.model, current.tokenizer, cell_dir, cfg.model)
    shutil.rmtree(partial, ignore_errors=True)
    metrics = {**flatten_metrics({**by_kind, **final}), **stream_summary(matrix, costs, injected.info)}
    cost = {k: sum(c[k] for c in costs) for k in costs[0]}
    stream = {"split": cfg.stream.split,
              "updates": [{"documents": len(u.documents), "probes": len(u.probes)} for u in updates],
              "matrix": matrix, "general": state["general"], "cost": costs, "info": state["info"]}
    return {**_cell(method, seed, metrics, cost, injected, cfg, start), "stream": stream}, injected


def cell_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def cell_path(out: Path, method: str, seed: int) -> Path:
    return out / "cells" / f"{cell_name(method, seed)}.json"


def read_cell(out: Path, method: str, seed: int) -> dict[str, Any]:
    """A finished cell from disk; one UserError naming the file when it is not one (edited or
    damaged outside kinject: cells are written atomically)."""
    path = cell_path(out, method, seed)
    cell = read_json(path)
    if not (isinstance(cell, dict) and cell.get("method") == method and cell.get("seed") == seed
            and isinstance(cell.get("metrics"), dict) and isinstance(cell.get("cost"), dict)):
        raise UserError(f"{path}: not a cell of {method} seed {seed} (fields missing or of the wrong type); "
                        "delete it to run the cell again")
    return cell


def missing_cells(out: Path, cfg: RunConfig) -> list[str]:
    """The cells of ``cfg``'s suite not yet written in ``out``, by name."""
    return [cell_name(m, s) for m in resolve_methods(cfg.methods) for s in cfg.seeds
            if not cell_path(out, m, s).is_file()]


def plan_units(methods: list[str], seeds: list[int]) -> list[tuple[int, list[str]]]:
    """The suite as units of work, in run order: per seed, each method with the compositions that
    reuse its result (``ft`` with ``ft+rag``; ``base`` with ``rag``), so that a worker holding a
    unit trains once. A unit is (seed, methods); its first method names it."""
    units: list[tuple[int, list[str]]] = []
    for seed in seeds:
        groups: dict[str, list[str]] = {}
        for method in methods:
            inner = get_method(method).inner
            groups.setdefault(inner if inner in methods else method, []).append(method)
        units += [(seed, group) for group in groups.values()]
    return units


def _record_identity(out: Path, name: str, identity: dict[str, Any], what: str) -> None:
    """Record ``identity`` in ``out/name`` for a run that holds no work yet; refuse to resume a run
    whose cells were made under another (one line naming what changed)."""
    path = out / name
    if path.is_file() and _started(out):
        recorded = read_json(path)
        if recorded != identity:
            diff = ", ".join(f"{k} {recorded.get(k)!r} -> {v!r}" for k, v in identity.items() if recorded.get(k) != v)
            raise UserError(f"--out {out}: its cells ran on {what} ({diff}); choose another directory")
        return
    write_json(path, identity)


def _launch_identity(out: Path, launch: dict[str, Any]) -> None:
    """``launch.json``: world size, device and dtype (a resumed run keeps them: batch sizes and
    arithmetic differ)."""
    _record_identity(out, "launch.json", launch, "another launch (a resumed run keeps world size, device and dtype)")


def _data_identity(out: Path, cfg: RunConfig, corpora: dict[int, Corpus]) -> None:
    """``data.json``: each seed's corpus hash (documents, paraphrases, probes, prompt), so that a
    changed corpus or probes file is never mixed with cells computed on the old one."""
    files = ", ".join(f"{k}={v}" for k, v in (("data.path", cfg.data.path), ("data.probes", cfg.data.probes)) if v)
    _record_identity(out, "data.json", {f"seed {s}": c.content_hash() for s, c in corpora.items()},
                     "other data: the corpus or its probes changed" + (f" ({files})" if files else ""))


def _run_unit(seed: int, unit: list[str], corpus: Corpus, cfg: RunConfig, out: Path,
              log: Callable[[str], None]) -> None:
    """Every cell of a unit not yet on disk; rank 0 writes them. A non-zero rank of a distributed
    launch only joins the training runs: it skips what trains nothing (base, rag) and a
    composition whose inner result it holds, and trains a composition's inner method without its
    modifier (no index)."""
    main = is_main_process()
    held: dict[str, Injected] = {}
    for method in unit:
        spec = get_method(method)
        cell_file = cell_path(out, method, seed)
        if shared(cell_file.is_file()):
            log(f"[seed {seed}] {method}: done earlier, kept")
            continue
        inner = held.get(spec.inner or "")
        if main and cfg.stream.updates > 1:  # a stream: no result is reused (each update wraps its own)
            log(f"[seed {seed}] {method}: injecting {cfg.stream.updates} updates one after another")
            cell, injected = run_stream_cell(method, seed, corpus, cfg, out)
            write_json(cell_file, cell)
        elif main:
            log(f"[seed {seed}] {method}: injecting and evaluating")
            cell, injected = run_cell(method, seed, corpus, cfg, out, inner)
            write_json(cell_file, cell)
        elif not spec.trains or inner is not None:
            continue
        else:
            trained = spec.inner if spec.wrap is not None else method
            injected = inject(trained, seed, corpus, cfg, out / "models" / cell_name(trained, seed))
        if method == unit[0]:
            held[method] = injected


def check_run(cfg: RunConfig) -> dict[int, Corpus]:
    """Every check a suite can fail before any work (methods, seeds, dtype, train.*, each
    method's own checks on each seed's corpus); returns the corpora by seed."""
    check_section(cfg, "")
    methods = resolve_methods(cfg.methods)
    resolve_model_path(cfg.model)
    if "retention" in cfg.eval.kinds and cfg.eval.retention_file is not None:
        retention_probes(Path(cfg.eval.retention_file).expanduser())
    for kind, path, load in (("general_qa", cfg.eval.general_qa_file, general_qa_probes),
                             ("general_mcq", cfg.eval.general_mcq_file, general_mcq_probes)):
        if kind in cfg.eval.kinds and path is not None:
            load(Path(path).expanduser())
    if any(get_method(m).trains for m in methods):
        with tempfile.TemporaryDirectory() as tmp:
            training_arguments(cfg.train, tmp, 0, 1)
        check_sharded_launch(cfg.train)
    corpora = {seed: load_corpus(cfg.data, seed) for seed in cfg.seeds}
    if cfg.stream.updates > 1:
        if world_size() > 1:
            raise UserError(f"stream.updates={cfg.stream.updates}: a stream runs in one process (its updates "
                            "follow one another); launch it without torchrun/accelerate, or use workers (--workers)")
        if cfg.retrieval.index is not None and any("rag" in m.split("+") for m in methods):
            raise UserError(f"retrieval.index {cfg.retrieval.index}: a prebuilt index holds every update's "
                            "documents; in a stream retrieval indexes the updates so far, so leave it unset")
        for seed, corpus in corpora.items():
            split_updates(corpus, cfg.stream, seed)
    for corpus in corpora.values():
        for method in methods:
            check = get_method(method).check
            if check is not None:
                check(corpus, cfg)
    return corpora


def run_bench(cfg: RunConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every (method, seed) not already done in ``out``; when every cell is there, write
    results.json, report.md and report.html.

    Several workers (``kinject bench`` started more than once on the same ``--out``, by hand, by
    ``--workers`` or as SLURM array tasks) share the directory: each unit of :func:`plan_units` is
    claimed before it starts (``kinject/claims.py``); the worker that finds every cell written
    writes the results. Returns them, or {} when other workers still hold units, or on a non-zero
    rank of a distributed launch.
    """
    corpora = check_run(cfg)
    methods = resolve_methods(cfg.methods)
    dtype = resolve_dtype(cfg.model_dtype)
    main = is_main_process()
    if main:
        prepare_run_dir(out, cfg)
        _launch_identity(out, launch_description(dtype))
        _data_identity(out, cfg, corpora)
        for method in methods:  # a damaged cell is found now, not after the others ran
            for seed in cfg.seeds:
                if cell_path(out, method, seed).is_file():
                    read_cell(out, method, seed)
    for seed, unit in plan_units(methods, cfg.seeds):
        if shared(all(cell_path(out, m, seed).is_file() for m in unit)):
            log(f"[seed {seed}] {', '.join(unit)}: done earlier, kept")
            continue
        claim = shared(try_claim(out / "claims", cell_name(unit[0], seed)) if main else None)
        if claim is None:
            log(f"[seed {seed}] {', '.join(unit)}: another worker has it")
            continue
        with held(Path(claim)) if main else contextlib.nullcontext():
            _run_unit(seed, unit, corpora[seed], cfg, out, log)
    if not main:
        return {}
    missing = missing_cells(out, cfg)
    if missing:
        log(f"{len(missing)} cells are with other workers ({', '.join(missing)}); the last worker writes the "
            f"results, or run: kinject report {out}")
        return {}
    return write_results(out, cfg, corpora)


def write_results(out: Path, cfg: RunConfig, corpora: dict[int, Corpus]) -> dict[str, Any]:
    """results.json, report.md and report.html from the cells on disk (whoever wrote them)."""
    methods = resolve_methods(cfg.methods)
    cells = {m: {s: read_cell(out, m, s) for s in cfg.seeds} for m in methods}
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


def merge_run(out: Path) -> dict[str, Any] | None:
    """results.json of a run directory written again from its cells (what several workers left),
    when they are all there and results.json lacks any of them; None when it is up to date or
    ``out`` holds no bench run. Missing cells are a UserError naming them."""

    if not (out / "config.yaml").is_file() or not (out / "cells").is_dir():
        return None
    cfg = load_config(out / "config.yaml")
    expected = [cell_name(m, s) for m in resolve_methods(cfg.methods) for s in cfg.seeds]
    missing = missing_cells(out, cfg)
    if missing:
        raise UserError(f"{out}: {len(missing)} of {len(expected)} cells are not written yet ({', '.join(missing)}); "
                        f"finish them with: kinject bench --config {out / 'config.yaml'} --out {out}")
    results_file = out / "results.json"
    if results_file.is_file():
        done = read_json(results_file)
        have = {cell_name(m, int(s)) for m, entry in done.get("methods", {}).items() for s in entry.get("per_seed", {})}
        if have >= set(expected):
            return None
    return write_results(out, cfg, {seed: load_corpus(cfg.data, seed) for seed in cfg.seeds})
