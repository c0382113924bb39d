"""Every method for a few steps on the accelerator present, checking that nothing runs on the CPU.

    benchmarks/gpu_smoke.sh [MODEL]      (MODEL: a 0.5-1B model directory or name; default gemma3-270m)

For each registered method (and ``ft+rag``), on a small built-in world (a few documents, a few
probes, one epoch): the method injects and the one evaluation runs, as ``kinject bench`` does,
under a dispatch mode that records every tensor operation whose inputs live on the CPU with more
than ``--cpu-elements`` elements (the model, the paraphraser, the embedder and the generator must
all compute on the accelerator; tokenization and small bookkeeping tensors are allowed). Then the
devices of the injected model's parameters, the shipped paraphraser (lapael) and the embedder (rag)
are checked against :func:`kinject.hardware.compute_device`. Exits 1, naming the method and the
operation, at the first thing found on the CPU; exits 2 when no accelerator is present (``--cpu``:
run every method end to end on the CPU anyway, without the operation check).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SETTINGS = ["data.builtin.test_people=2", "data.builtin.test_orgs=1", "data.builtin.train_people=4",
            "data.builtin.train_orgs=2", "train.epochs=1", "para.epochs=1", "eval.limit=4", "delia.ratio=0.5",
            "delia.max_new_tokens=16", "qa.epochs=1", "train.progress=false", "eval.progress=false",
            "retrieval.progress=false", "retrieval.cache=false", "generate.progress=false", "generate.cache=false",
            "delia.cache=false"]


class CpuOps(TorchDispatchMode):
    """Records operations on CPU tensors larger than ``limit`` elements."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.found = limit, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in torch.utils._pytree.tree_leaves((args, kwargs or {})):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.numel() > self.limit:
                self.found.append(f"{func} on a CPU tensor of shape {tuple(t.shape)}")
                break
        return func(*args, **(kwargs or {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--methods", default="all,ft+rag", help="comma-separated (default: every method, ft+rag)")
    parser.add_argument("--cpu-elements", type=int, default=4096)
    parser.add_argument("--cpu", action="store_true", help="run on a CPU-only machine anyway: every method end to "
                        "end, without the CPU-operation check")
    args = parser.parse_args()
    import kinject.methods  # noqa: F401  (registers the methods)
    from kinject.bench import inject
    from kinject.config import load_config
    from kinject.data.loaders import load_corpus
    from kinject.evaluation.runner import evaluate
    from kinject.hardware import compute_device, device_name
    from kinject.methods import get_method, resolve_methods

    device = compute_device()
    if device.type == "cpu" and not args.cpu:
        print("gpu_smoke: no accelerator here (compute_device() is the CPU); --cpu runs the methods anyway",
              file=sys.stderr)
        return 2
    cfg = load_config(None, [f"model={args.model}", f"generate.model={args.model}", *SETTINGS])
    corpus = load_corpus(cfg.data, 0)
    print(f"{device} ({device_name()}), model {args.model}")
    failures = 0
    for method in resolve_methods(args.methods.split(",")):
        spec = get_method(method)
        try:
            if spec.check is not None:
                spec.check(corpus, cfg)
        except Exception as exc:  # e.g. no paraphraser shipped for this model, no chat template
            print(f"  {method:22s} skipped: {exc}")
            continue
        watch = CpuOps(args.cpu_elements)
        with tempfile.TemporaryDirectory() as tmp, watch if device.type != "cpu" else contextlib.nullcontext():
            injected = inject(method, 0, corpus, cfg, Path(tmp))
            evaluate(injected.model, injected.tokenizer, corpus, cfg.eval, injected.context)
        places = {p.device for p in injected.model.parameters()}
        embedder = getattr(getattr(injected.context, "retriever", None), "embedder", None)
        if getattr(embedder, "model", None) is not None:
            places |= {p.device for p in embedder.model.parameters()}
        wrong = [str(d) for d in places if d.type != device.type]
        if watch.found or wrong:
            failures += 1
            print(f"  {method:22s} FAIL: {(watch.found or [f'parameters on {wrong}'])[0]}")
        else:
            checked = "" if device.type == "cpu" else f", no CPU operation over {args.cpu_elements} elements"
            print(f"  {method:22s} ok: {injected.train_steps} steps, all parameters on {device.type}{checked}",
                  flush=True)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(f"{'all methods ran on ' + device.type if not failures else f'{failures} methods touched the CPU'}; "
          f"peak allocated {peak:.1f} GiB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
