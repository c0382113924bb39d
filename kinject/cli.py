"""Command line: thin sub-commands over bench, inject and evaluation.

    kinject bench   [--config FILE] [--methods a,b|all] [--seeds N] [--out DIR] [--sweep key=v1,v2 ...]
                    [--workers N [--cluster auto|local|slurm] [--worker-option key=value ...]] [key=value ...]
    kinject inject  --method NAME --out DIR [--config FILE] [--seed S] [key=value ...]
    kinject eval    --model PATH [--probes FILE] [--config FILE] [--seed S] [--out DIR] [key=value ...]
    kinject index build CORPUS --out DIR [--config FILE] [--seed S] [key=value ...]
    kinject index query DIR "question" [-k 5]
    kinject train-paraphraser CORPUS --out DIR [--config FILE] [--seed S] [key=value ...]
    kinject paraphrase CORPUS --out FILE [--k K] [--config FILE] [--seed S] [key=value ...]
    kinject self-sample QUERIES --out FILE [--config FILE] [key=value ...]
    kinject questions CORPUS --out FILE [--demonstrations] [--config FILE] [--seed S] [key=value ...]
    kinject report DIR
    kinject compare DIR [DIR ...] [--pair A,B ...] [--markdown]
    kinject methods

Bad input prints one line ``kinject: error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from kinject.errors import UserError

EPILOG = ("key=value overrides any config key, e.g. train.lr=3e-4 data.source=lapael-squad "
          "data.path=DIR data.limit=100 eval.kinds=[qa,mcq]. See configs/default.yaml for every key.")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # no abbreviations: bench --seed 3 is not --seeds 3
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> None:  # one line, exit 2; "kinject: error: bench: ...", not "kinject" twice
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UserError(f"{command}: {message}" if command else message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (keys as in configs/default.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kinject", description="Teach a language model new facts and measure how well it worked.",
                     epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("bench", help="run a suite of methods x seeds, print the table, write a run directory",
                       epilog=EPILOG)
    _common(b)
    b.add_argument("--methods", help="comma-separated method names, or 'all' (default: the config's suite)")
    b.add_argument("--seeds", type=int, help="run seeds 0..N-1 (mean ± standard error when N > 1)")
    b.add_argument("--out", default="runs/latest", help="run directory (resumed if it holds the same config)")
    b.add_argument("--sweep", action="append", default=[], metavar="key=v1,v2,...",
                   help="run the suite once per value of a config key (a run directory each under --out) and plot "
                   "each measure against it (sweep.png); repeat to zip several keys")
    b.add_argument("--workers", type=int, help="submit N workers on the run directory through submitit (a SLURM "
                   "job array where sbatch exists, else local processes), wait, and merge their cells")
    b.add_argument("--cluster", default="auto", help="with --workers: auto | local | slurm (default auto)")
    b.add_argument("--worker-option", action="append", default=[], metavar="key=value",
                   help="with --workers: a submitit parameter, e.g. timeout_min=240 slurm_partition=gpu "
                   "gpus_per_node=1 (repeat)")

    i = sub.add_parser("inject", help="inject the corpus with one method and save the model", epilog=EPILOG)
    _common(i)
    i.add_argument("--method", required=True)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--out", required=True, help="directory for the injected model (must not exist)")

    e = sub.add_parser("eval", help="evaluate one model on one probe set (with retrieval.index=DIR: retrieval too)",
                       epilog=EPILOG)
    _common(e)
    e.add_argument("--model", required=True, help="a saved model directory, hub id, or smollm2-135m")
    e.add_argument("--probes", help="a probes JSONL (default: the config's corpus probes)")
    e.add_argument("--seed", type=int, default=0, help="seed of the built-in world (default 0)")
    e.add_argument("--out", help="directory for results.json and samples.jsonl")

    ix = sub.add_parser("index", help="build or query a retrieval index (FAISS + docstore)")
    ix_sub = ix.add_subparsers(dest="index_command", required=True, parser_class=_Parser)
    ib = ix_sub.add_parser("build", help="chunk, embed and index a corpus", epilog=EPILOG)
    ib.add_argument("corpus", help="a text directory, a documents JSONL, a LaPael SQuAD directory, or 'builtin'")
    _common(ib)
    ib.add_argument("--out", required=True, help="index directory to create (must not exist)")
    ib.add_argument("--seed", type=int, default=0, help="seed of the built-in world (default 0)")
    iq = ix_sub.add_parser("query", help="print the passages an index returns for a question, with scores")
    iq.add_argument("index", help="an index directory from 'kinject index build'")
    iq.add_argument("question")
    iq.add_argument("-k", type=int, default=5, help="passages to return (default 5)")
    iq.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="dense",
                    help="dense (the index's embedder), bm25 over its chunks, or both fused (default dense)")

    tp = sub.add_parser("train-paraphraser", help="train a LaPael latent paraphraser for the model (model=...)",
                        epilog="Settings: the lapael.* keys (configs/default.yaml). " + EPILOG)
    tp.add_argument("corpus", help="'builtin' (the train split of the world of --seed), a LaPael SQuAD directory "
                    "(its train split), or a JSONL of {text, answer, paraphrases, entities}")
    _common(tp)
    tp.add_argument("--out", required=True, help="paraphraser directory to create (must not exist)")
    tp.add_argument("--seed", type=int, default=0, help="training seed, and the built-in world's (default 0)")

    pp = sub.add_parser("paraphrase", help="generate, filter and save k paraphrases per document (generate.* "
                        "picks the LLM; para.* the filters)", epilog=EPILOG)
    pp.add_argument("corpus", help="a text directory, a documents JSONL, a LaPael SQuAD directory, or 'builtin'")
    _common(pp)
    pp.add_argument("--out", required=True, help="paraphrases JSONL to write (must not exist); use with "
                    "para.source=FILE")
    pp.add_argument("--k", type=int, help="paraphrases per document (default: para.k)")
    pp.add_argument("--seed", type=int, default=0,
                    help="seed of the built-in world (default 0); the sampling seed is generate.seed")

    ss = sub.add_parser("self-sample", help="the model's own answers to diverse queries, for DELIA (+delia) "
                        "(model=...; delia.* sets the sampling)", epilog=EPILOG)
    ss.add_argument("queries", help="'builtin' (kinject's 104 everyday tasks) or a JSONL of {query, reference "
                    "(optional)}")
    _common(ss)
    ss.add_argument("--out", required=True, help="self-sample JSONL to write (must not exist); use with "
                    "delia.samples=FILE")

    qg = sub.add_parser("questions", help="write QA and 4-way MCQ probes for a corpus that has none, or +qa "
                        "demonstrations (--demonstrations); generate.* picks the LLM, questions.* the rest",
                        epilog=EPILOG)
    qg.add_argument("corpus", help="a text directory, a documents JSONL, a LaPael SQuAD directory, or 'builtin'")
    _common(qg)
    qg.add_argument("--out", required=True, help="JSONL to write (must not exist): probes, for data.probes=FILE, or "
                    "with --demonstrations QA demonstrations, for qa.source=FILE")
    qg.add_argument("--demonstrations", action="store_true", help="write {question, answers, context} per document "
                    "instead of probes; give it documents held apart from those you inject")
    qg.add_argument("--seed", type=int, default=0, help="seed of the built-in world (default 0)")

    rp = sub.add_parser("report", help="write report.md and report.html of a run directory again from its "
                        "results.json (a sweep directory: sweep.png and report.html from sweep.json), computing "
                        "no cell; results.json is first merged from the cells several workers wrote")
    rp.add_argument("dir", help="a run or sweep directory written by 'kinject bench'")

    cp = sub.add_parser("compare", help="finished runs side by side: their cells merged by seed (every shared seed "
                        "must have the same corpus), and paired differences between any two methods they hold; a "
                        "method several runs hold is named <run dir name>/<method>")
    cp.add_argument("dirs", nargs="+", help="run directories written by 'kinject bench' (with results.json)")
    cp.add_argument("--pair", action="append", default=[], metavar="A,B",
                    help="print A minus B per seed, mean ± standard error over the seeds both ran (repeatable)")
    cp.add_argument("--markdown", action="store_true", help="Markdown tables instead of fixed-width ones")

    sub.add_parser("methods", help="list the registered methods and modifiers")
    return parser


def _fresh(path: str, what: str = "directory") -> Path:
    """``--out``: a path that must not exist yet and can be written (checked before any work)."""
    from kinject.artifacts import fresh_output

    return fresh_output(path, what)


def _refuse_both(args: argparse.Namespace, flag: str, key: str) -> None:
    """One line when an option and the config key it sets are both given (``--seeds 3`` with
    ``seeds=[5]``): which one is meant is not for kinject to guess."""
    from kinject.config import dotted_keys, read_config_file, split_override_key

    given = [split_override_key(o) for o in args.overrides]
    if args.config:
        given += dotted_keys(read_config_file(args.config))
    if key in given:
        raise UserError(f"{flag} and config key {key!r} both given; keep one")


def _generation_cost(c: dict, out: Path) -> str:
    """One line: what a generated file cost (``GenerationCost.to_dict()``), and where it went."""
    return (f"cost: {c['prompt_tokens']} prompt + {c['completion_tokens']} generated tokens, {c['seconds']:.0f} s "
            f"({c['cached']} of {c['requests']} requests from the cache); written to {out}")


def _load_cfg(args: argparse.Namespace):
    from kinject.config import load_config

    return load_config(args.config, args.overrides)


def cmd_bench(args: argparse.Namespace) -> int:
    from kinject.bench import run_bench
    from kinject.report.render import format_table

    cfg = _load_cfg(args)
    if args.methods:
        _refuse_both(args, "--methods", "methods")
        cfg.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.seeds is not None:
        _refuse_both(args, "--seeds", "seeds")
        if args.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {args.seeds}")
        cfg.seeds = list(range(args.seeds))
    start = time.perf_counter()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    run_point = lambda c, d: run_bench(c, d, log)  # noqa: E731
    if args.workers is not None:
        from kinject.workers import check_workers, parse_options, run_workers

        check_workers(args.workers, args.cluster)
        options = parse_options(args.worker_option)
        run_point = lambda c, d: run_workers(c, d, args.workers, args.cluster, options, log)  # noqa: E731
        if not args.sweep:
            results = run_point(cfg, Path(args.out))
            print(format_table(results))
            print(f"run directory: {args.out} ({args.workers} workers; report.html, report.md; "
                  f"{time.perf_counter() - start:.0f} s)")
            return 0
    if args.sweep:
        from kinject.report.render import sweep_table
        from kinject.sweep import parse_sweep, run_sweep

        summary = run_sweep(cfg, parse_sweep(args.sweep), Path(args.out), run_point, log)
        if summary:
            print(sweep_table(summary))
            print(f"sweep directory: {args.out} (sweep.json, sweep.png, report.html; "
                  f"{time.perf_counter() - start:.0f} s)")
        return 0
    results = run_bench(cfg, Path(args.out), log=log)
    if not results:  # a non-zero rank of a distributed launch
        return 0
    print(format_table(results))
    print(f"run directory: {args.out} (report.html, report.md; {time.perf_counter() - start:.0f} s)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kinject.bench import merge_run
    from kinject.report.files import rerender

    if merge_run(Path(args.dir)) is not None:
        print(f"wrote {Path(args.dir) / 'results.json'} (merged from its cells)")
    for path in rerender(Path(args.dir)):
        print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from kinject.report.compare import compare_runs, format_comparison

    pairs = []
    for pair in args.pair:
        a, comma, b = pair.partition(",")
        if not comma or not a or not b or "," in b:
            raise UserError(f"compare: --pair {pair!r}: expected two method names, A,B")
        pairs.append((a, b))
    print(format_comparison(compare_runs([Path(d) for d in args.dirs], pairs), markdown=args.markdown))
    return 0


def cmd_inject(args: argparse.Namespace) -> int:
    from kinject.artifacts import staged_directory
    from kinject.bench import check_run, inject
    from kinject.models import save_injected

    cfg = _load_cfg(args)
    if cfg.stream.updates > 1:
        raise UserError(f"stream.updates={cfg.stream.updates}: kinject inject injects the corpus once; run the stream "
                        "with kinject bench (save_models=true keeps each cell's final model)")
    out = _fresh(args.out)
    cfg.methods, cfg.seeds = [args.method], [args.seed]
    corpus = check_run(cfg)[args.seed]
    with staged_directory(out) as stage:  # the model directory appears whole, or not at all
        injected = inject(args.method, args.seed, corpus, cfg, stage)
        written = save_injected(injected.model, injected.tokenizer, stage, cfg.model, merged=cfg.save_merged)
    what = "LoRA adapter" if hasattr(injected.model, "peft_config") else "model"
    print(f"{args.method} (seed {args.seed}): {injected.train_tokens} tokens trained in "
          f"{injected.train_seconds:.0f} s; {what} saved to {out}"
          + (f" (merged: {out / written[1].name})" if len(written) > 1 else ""))
    if injected.context is not None:
        print(f"retrieval index saved to {out / 'index'}; evaluate with: kinject eval --model {out} "
              f"retrieval.index={out / 'index'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from kinject.bench import base_reference
    from kinject.data.jsonl import load_records, write_json, write_jsonl
    from kinject.data.loaders import load_corpus
    from kinject.data.schema import Probe
    from kinject.evaluation.runner import evaluate
    from kinject.models import load_model

    cfg = _load_cfg(args)
    out = _fresh(args.out) if args.out else None
    corpus = load_corpus(cfg.data, args.seed) if not args.probes else None
    if args.probes:
        from kinject.data.builtin.retention import RETENTION_FEWSHOT
        from kinject.data.schema import Corpus

        probes = load_records(args.probes, Probe.from_dict)
        if not probes:
            raise UserError(f"{args.probes}: no probes")
        corpus = Corpus(name=Path(args.probes).name, documents=[], probes=probes, fewshot=list(RETENTION_FEWSHOT))
    loaded = load_model(args.model, cfg.model_dtype)
    context = None
    if cfg.retrieval.index is not None:  # answer with retrieved passages, as rag does
        from kinject.retrieval.retriever import RetrievalContext, check_retrieval_config, open_retriever

        check_retrieval_config(cfg.retrieval)
        retriever, _ = open_retriever([], cfg.retrieval, None)
        context = RetrievalContext(retriever, corpus, cfg.retrieval.k, cfg.retrieval.batch_size)
    metrics, samples = evaluate(loaded.model, loaded.tokenizer, corpus, cfg.eval, context, base_reference(cfg))
    for kind, m in metrics.items():
        if isinstance(m, dict):
            print(f"{kind:10s} " + "  ".join(f"{k}={v:.3f}" if k != "n" else f"n={int(v)}" for k, v in m.items()))
    print(f"seed: {args.seed}; normalisation: {metrics['normalisation']}")
    if out is not None:
        write_json(out / "results.json", {"model": args.model, "seed": args.seed, "metrics": metrics})
        write_jsonl(out / "samples.jsonl", samples)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from kinject.retrieval.embedder import Embedder
    from kinject.retrieval.index import PassageIndex, read_index_meta
    from kinject.retrieval.lexical import LexicalIndex
    from kinject.retrieval.retriever import Retriever, build_index, check_retrieval_config, load_embedder

    if args.index_command == "build":
        cfg = _load_cfg(args)
        out = _fresh(args.out)
        check_retrieval_config(cfg.retrieval)
        from kinject.data.loaders import load_documents

        name, documents, _ = load_documents(args.corpus, cfg.data, args.seed)
        start = time.perf_counter()
        index = build_index(documents, cfg.retrieval, load_embedder(cfg.retrieval))
        index.save(out)
        split = index.meta["chunking"]["split_to_window"]
        print(f"{name}: {len(documents)} documents -> {len(index.chunks)} chunks ({index.meta['index']['type']}), "
              f"embedder {cfg.retrieval.embedder}, {time.perf_counter() - start:.1f} s; index saved to {out}"
              + (f"; {split} chunks longer than the embedder's window were split into windows" if split else ""))
        return 0
    if args.k < 1:
        raise UserError(f"-k must be >= 1, got {args.k}")
    path = Path(args.index)
    built_by = read_index_meta(path)["embedder"]
    embedder = Embedder(built_by["name"], built_by["query_prefix"], built_by["passage_prefix"])
    index = PassageIndex.load(path, expect=embedder.describe())
    lexical = LexicalIndex(index.chunks) if args.mode != "dense" else None
    retriever = Retriever(embedder, index if args.mode != "bm25" else None, lexical, args.mode,
                          chunking=index.meta["chunking"])
    for hit in retriever.search([args.question], args.k)[0]:
        c = hit.chunk
        print(f"{hit.rank:>3}  {hit.score:.4f}  {c.doc_id} [{c.start}:{c.end}]  {c.text}")
    return 0


def cmd_train_paraphraser(args: argparse.Namespace) -> int:
    from kinject.data.loaders import load_paraphrase_data
    from kinject.lapael.mask_rates import rates_line
    from kinject.lapael.train import check_train_config, fit_paraphraser
    from kinject.models import load_model

    cfg = _load_cfg(args)
    out = _fresh(args.out)
    check_train_config(cfg.lapael)
    name, facts, paraphrases = load_paraphrase_data(args.corpus, cfg.data, args.seed)
    loaded = load_model(cfg.model, cfg.model_dtype)
    command = "kinject " + shlex.join(args.argv)
    training = fit_paraphraser(loaded, name, facts, paraphrases, cfg.lapael, args.seed, command,
                               log=lambda m: print(m, file=sys.stderr, flush=True))
    training.paraphraser.save(out)
    last, meta = training.epochs[-1], training.paraphraser.meta
    stopped = f" ({training.stopped})" if training.stopped else ""
    print(f"paraphraser for {cfg.model} (seed {args.seed}): {meta['training']['sentences']} "
          f"sentences of {name}, {len(training.epochs)} epochs{stopped} in {training.seconds:.0f} s; final kl "
          f"{last.kl:.4f}, mask {last.mask:.4f}; saved to {out} (use with lapael.paraphraser={out})")
    print(f"learned mask on {meta['perturb_rates']['on']}: {rates_line(meta['perturb_rates'])}")
    return 0


def cmd_paraphrase(args: argparse.Namespace) -> int:
    from kinject.data.jsonl import write_jsonl
    from kinject.data.loaders import load_documents
    from kinject.generation.cache import generation_cache
    from kinject.generation.paraphrase import generate_paraphrases, group_answers

    cfg = _load_cfg(args)
    out = _fresh(args.out, "file")
    if args.k is not None:
        _refuse_both(args, "--k", "para.k")
        cfg.para.k = args.k
    if cfg.para.k < 1:
        raise UserError(f"--k must be >= 1, got {cfg.para.k}")
    name, documents, facts = load_documents(args.corpus, cfg.data, args.seed)
    para = generate_paraphrases(documents, group_answers(facts), cfg.para, cfg.generate,
                                generation_cache(cfg.generate.cache))
    write_jsonl(out, [{"id": d.id, "text": d.text, "paraphrases": para.by_doc[d.id]} for d in documents])
    i, c = para.info, para.info["cost"]
    print(f"{name}: {i['documents']} documents, {i['candidates']} candidates from {cfg.generate.model} "
          f"({cfg.generate.backend}, generate.seed {cfg.generate.seed}); passed the filters {i['passed']} "
          f"({i['pass_rate']:.1%}); kept {i['kept']} (k = {cfg.para.k}); documents with >= 1 kept "
          f"{i['documents_with_kept']}, with {cfg.para.k}: {i['documents_with_k']}")
    print("dropped: " + ", ".join(f"{k} {v}" for k, v in i["dropped"].items())
          + f" (answer checked on {i['answer_checked']} documents)")
    print(_generation_cost(c, out))
    return 0


def cmd_self_sample(args: argparse.Namespace) -> int:
    from kinject.data.jsonl import write_jsonl
    from kinject.generation.cache import GenerationCost, generation_cache
    from kinject.generation.self_sample import check_delia_config, load_queries, self_sample

    cfg = _load_cfg(args)
    out = _fresh(args.out, "file")
    check_delia_config(cfg.delia)
    queries = load_queries(args.queries)
    cost = GenerationCost()
    chats, sources = self_sample(cfg.model, queries, cfg.delia, generation_cache(cfg.delia.cache), cost)
    write_jsonl(out, [{"messages": c} for c in chats])
    d = cfg.delia
    asked = (f"prompt reference ({sources['reference_file']} references from the file, {sources['reference_own']} "
             "the model's own first answer)" if d.prompt == "reference" else "prompt bare")
    print(f"{len(chats)} self-samples from {cfg.model} ({d.answers_per_query} per query, {asked}; temperature "
          f"{d.temperature}, top-p {d.top_p}, delia.seed {d.seed}); use with delia.samples={out}")
    print(_generation_cost(cost.to_dict(), out))
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    import dataclasses

    from kinject.data.jsonl import write_jsonl
    from kinject.data.loaders import load_documents
    from kinject.generation.cache import generation_cache
    from kinject.generation.questions import demonstration_rows, generate_questions

    cfg = _load_cfg(args)
    out = _fresh(args.out, "file")
    name, documents, _ = load_documents(args.corpus, cfg.data, args.seed)
    probes, info = generate_questions(documents, cfg.questions, cfg.generate, generation_cache(cfg.generate.cache))
    if args.demonstrations:
        write_jsonl(out, demonstration_rows(probes, documents))
        kept = f"kept {info['qa']} QA demonstrations (use with qa.source={out})"
    else:
        write_jsonl(out, [{k: v for k, v in dataclasses.asdict(p).items() if v not in ("", [], -1)} for p in probes])
        kept = f"kept {info['qa']} QA and {info['mcq']} MCQ probes"
    print(f"{name}: {info['documents']} documents, {info['replies']} replies from {info['generator']} "
          f"(generate.seed {cfg.generate.seed}); {kept}; {info['documents_without']} documents without a question")
    print("dropped: " + ", ".join(f"{k} {v}" for k, v in info["dropped"].items()))
    print(_generation_cost(info["cost"], out))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from kinject.methods.registry import method_specs, modifier_specs

    width = max(len(s.name) for s in method_specs()) + 1
    for spec in method_specs():
        print(f"{spec.name:{width}s} {spec.description}")
    for mod in modifier_specs():
        which = "any method m that trains" if mod.prepare or mod.needs_training else "any method m"
        print(f"{'<m>+' + mod.name:{width}s} {which}, {mod.description} (e.g. ft+{mod.name})")
    return 0


COMMANDS = {"bench": cmd_bench, "inject": cmd_inject, "eval": cmd_eval, "index": cmd_index,
            "train-paraphraser": cmd_train_paraphraser, "paraphrase": cmd_paraphrase, "questions": cmd_questions,
            "self-sample": cmd_self_sample, "report": cmd_report, "compare": cmd_compare, "methods": cmd_methods}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; ``key=value`` overrides may sit anywhere, before or after options.

    (argparse fills a positional list once, at its first chunk; later key=value words come back
    as unknown arguments and are added to the overrides here.)
    """
    argv = sys.argv[1:] if argv is None else argv
    args, extra = build_parser().parse_known_args(argv)
    args.argv = list(argv)  # recorded by commands whose artefacts say how they were made
    if extra:
        if not hasattr(args, "overrides") or not all("=" in e and not e.startswith("-") for e in extra):
            raise UserError(f"kinject: unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        import kinject.methods  # noqa: F401  (registers the methods)

        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"kinject: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kinject: interrupted", file=sys.stderr)
        return 130
