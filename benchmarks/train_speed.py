"""kinject's training step against a minimal hand-written PyTorch loop: the same rows, the same settings.

    .venv/bin/python benchmarks/train_speed.py [--model smollm2-135m] [--epochs 2] [--repeats 2]

Rows: the built-in world of seed 0, its documents and 4 gold paraphrases of each (ft-para's
texts), cut and tokenized by kinject's ``training_rows``. Settings: kinject's defaults (full
fine-tuning, AdamW lr 3e-4 without weight decay, fused in both as ``train.optim`` is, constant
schedule, batch 8, gradient clipping at 1.0, fp32 weights with bf16 autocast where the machine
runs bf16 natively).

Variants, each in its own process (so each one's peak memory is its own), interleaved
``--repeats`` times: ``hand`` (a plain loop: shuffle, right-pad, forward, backward, clip, step),
``kinject`` (``train_causal_lm``: the transformers Trainer) and ``kinject-packing``
(``train.packing=true``: each batch one unpadded sequence). Printed: seconds (median), tokens/s
(non-padding tokens trained per second), peak memory (resident set on a CPU, allocated on a GPU),
the mean loss of the last epoch, and kinject's tokens/s over the hand loop's (>= 1.0: no slower).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("hand", "kinject", "kinject-packing")


def _rows(model: str):
    import dataclasses

    from kinject.config import RunConfig
    from kinject.data.loaders import load_corpus
    from kinject.models import load_model
    from kinject.training.trainer import training_rows

    cfg = RunConfig(model=model)
    corpus = load_corpus(cfg.data, 0)
    texts = [d.text for d in corpus.documents] + [p for d in corpus.documents for p in corpus.paraphrases[d.id][:4]]
    loaded = load_model(model, "float32")
    return loaded, texts, training_rows(loaded.tokenizer, texts, cfg.train.max_length), dataclasses.replace(cfg.train)


def _peak_memory_mib() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def hand_loop(loaded, rows, cfg, epochs: float, seed: int) -> dict:
    """The minimal loop kinject's Trainer is measured against."""
    import torch

    from kinject.hardware import compute_device, resolve_bf16
    from kinject.training.trainer import pad_right

    torch.manual_seed(seed)
    model, device = loaded.model, compute_device()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, fused=True)  # as train.optim
    bf16 = resolve_bf16(cfg.bf16)
    generator = torch.Generator().manual_seed(seed)
    losses: list[list[float]] = []
    start = time.perf_counter()
    for _ in range(int(epochs)):
        losses.append([])
        order = torch.randperm(len(rows), generator=generator).tolist()
        for i in range(0, len(order), cfg.batch_size):
            batch = [rows[j] for j in order[i:i + cfg.batch_size]]
            ids, mask = pad_right([r["input_ids"] for r in batch], loaded.tokenizer.pad_token_id)
            labels, _ = pad_right([r["labels"] for r in batch], -100)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device),
                             use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses[-1].append(loss.item())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "last_epoch_loss": statistics.mean(losses[-1])}


def kinject_loop(loaded, texts, cfg, epochs: float, seed: int, packing: bool) -> dict:
    """``train_causal_lm`` on the texts (it cuts them into the same rows); seconds: ``Trainer.train``."""
    import dataclasses

    from kinject.training.trainer import train_causal_lm

    run_cfg = dataclasses.replace(cfg, epochs=epochs, packing=packing, progress=False)
    _, res = train_causal_lm(loaded.model, loaded.tokenizer, texts, run_cfg, seed)
    per_epoch = max(1, len(res.losses) // int(epochs))
    return {"seconds": res.seconds, "last_epoch_loss": statistics.mean(res.losses[-per_epoch:]), "steps": res.steps}


def run_variant(variant: str, model: str, epochs: float, seed: int) -> dict:
    loaded, texts, rows, cfg = _rows(model)
    if variant == "hand":
        out = hand_loop(loaded, rows, cfg, epochs, seed)
    else:
        out = kinject_loop(loaded, texts, cfg, epochs, seed, packing=variant == "kinject-packing")
    tokens = sum(len(r["input_ids"]) for r in rows) * int(epochs)
    return {**out, "variant": variant, "tokens": tokens, "rows": len(rows), "peak_mib": _peak_memory_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.model, args.epochs, args.seed)))
        return
    from kinject.hardware import device_name, precision

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for variant in VARIANTS:
            child = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", args.model,
                                    "--epochs", str(args.epochs), "--seed", str(args.seed)],
                                   capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            runs[variant].append(result)
            print(f"repeat {r + 1} {variant:16s} {result['seconds']:7.1f} s  loss {result['last_epoch_loss']:.4f}  "
                  f"peak {result['peak_mib']:.0f} MiB", file=sys.stderr, flush=True)
    first = runs["hand"][0]
    print(f"model {args.model}, {first['rows']} rows x {args.epochs} epochs ({first['tokens']} tokens), seed "
          f"{args.seed}, {device_name()}, train {precision('auto')}; median of {args.repeats}, one process each")
    print(f"{'variant':16s} {'seconds':>8s} {'tokens/s':>9s} {'peak MiB':>9s} {'last-epoch loss':>16s}")
    speed = {}
    for variant, results in runs.items():
        seconds = statistics.median(x["seconds"] for x in results)
        speed[variant] = first["tokens"] / seconds
        print(f"{variant:16s} {seconds:8.1f} {speed[variant]:9.0f} {max(x['peak_mib'] for x in results):9.0f} "
              f"{statistics.mean(x['last_epoch_loss'] for x in results):16.4f}")
    for variant in ("kinject", "kinject-packing"):
        print(f"{variant} / hand tokens/s: {speed[variant] / speed['hand']:.2f}")


if __name__ == "__main__":
    main()
