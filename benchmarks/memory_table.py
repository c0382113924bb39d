"""Memory per GPU for training with kinject: 1B/8B x full/LoRA x fp32/bf16 x checkpointing or not.

    .venv/bin/python benchmarks/memory_table.py [--batch-size 8] [--tokens 256] [--gpu-gib 80]

Nothing is downloaded. Activation memory is measured, not modelled: the published configs of
Llama 3.2 1B and Llama 3.1 8B are built on the CPU with 1 and 2 decoder layers and a 256- and
512-entry vocabulary (random weights), and training forward passes (the next-token loss) of one
and of two 256-token chunks are run under ``torch.autograd.graph.saved_tensors_hooks``, which sees
every tensor autograd keeps for the backward pass (a buffer saved twice is counted once). The
difference between two chunks and one is one chunk's activations (the weights autograd also keeps
do not grow with the batch); between 1 and 2 layers, one layer's share; between the vocabularies,
the per-entry share of the embeddings, logits and loss. These are scaled to the real depth,
vocabulary and batch (kinject's default: 8 chunks of 256 tokens). Attention runs PyTorch's SDPA, which saves
no (tokens x tokens) matrix, so activations grow linearly with the batch.

Per GPU, one process, no sharding:

- weights: during full training kinject keeps fp32 master weights (``train.master_weights`` float32),
  so ``model_dtype`` fp32 and bf16 both hold 4 bytes/parameter, and bf16 autocast adds its bf16
  copy of each weight (2 bytes) for the step; LoRA keeps the frozen base in ``model_dtype`` (4 or 2
  bytes) and the adapters (r 16 on the 7 projections of every layer) in fp32;
- gradients: 4 bytes per trainable parameter; AdamW: 8 bytes per trainable parameter;
- activations: measured as above; "bf16" runs under bf16 autocast (``train.bf16``), "fp32" without;
  with checkpointing (``train.gradient_checkpointing``) only each layer's input is kept, plus one
  layer's activations while it is recomputed.

"Fits" means the sum is at most 90% of ``--gpu-gib`` (the rest for allocator slack and transient
buffers, which this count leaves out).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch

LLAMA = {  # the published configs (hidden sizes, layers, heads, vocabulary)
    "1B": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True, "head_dim": 64},
    "8B": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False, "head_dim": 128},
}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GIB = 2**30


def small_model(size: str, layers: int, vocab: int, mode: str, dtype: str):
    """``size``'s config cut to ``layers`` decoder layers and ``vocab`` entries, set up as kinject
    trains it: full (fp32 weights) or LoRA (the frozen base in ``dtype``, fp32 adapters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**LLAMA[size], "num_hidden_layers": layers, "vocab_size": vocab},
                         max_position_embeddings=8192, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model.to(torch.bfloat16 if dtype == "bf16" else torch.float32),
                               LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS)))
    model.train()
    return model


def saved_bytes(model, tokens: int, bf16: bool, batch: int = 1) -> int:
    """Bytes autograd saves in one training forward of ``batch`` chunks of ``tokens``, loss included
    (the weights, and autocast's bf16 copies of them, among them)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        seen.setdefault((t.untyped_storage().data_ptr(), t.storage_offset()), t.numel() * t.element_size())
        return t

    ids = torch.randint(0, model.config.vocab_size, (batch, tokens))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(input_ids=ids, labels=ids, use_cache=False)  # the graph is freed with the unused output
    return sum(seen.values())


def per_chunk(size: str, mode: str, dtype: str, tokens: int) -> tuple[int, int, int]:
    """(bytes per layer, bytes outside the layers at the real vocabulary, bytes of one layer's
    input) for one chunk of ``tokens``, measured as the module docstring says."""
    bf16 = dtype == "bf16"

    def chunk(layers: int, vocab: int) -> int:  # one more chunk in the batch: activations, no weights
        model = small_model(size, layers, vocab, mode, dtype)
        extra = saved_bytes(model, tokens, bf16, batch=2) - saved_bytes(model, tokens, bf16, batch=1)
        del model
        gc.collect()  # an 8B layer pair is 1.7 GB: free it before the next
        return extra

    one, two, wide = chunk(1, 256), chunk(2, 256), chunk(1, 512)
    layer = two - one
    outside_256 = one - layer
    per_entry = (wide - one) / 256
    outside = int(outside_256 + per_entry * (LLAMA[size]["vocab_size"] - 256))
    residual = 2 if (mode == "lora" and bf16) else 4  # the residual stream: fp32 weights keep it fp32
    return layer, outside, tokens * LLAMA[size]["hidden_size"] * residual


def parameters(size: str) -> tuple[int, int]:
    """(all parameters, LoRA r=16 adapter parameters) of the full model, from its config."""
    c = LLAMA[size]
    h, i, n, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    q, kv = c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    shapes = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]  # (in, out) of the 7 projections
    layer = sum(a * b for a, b in shapes) + 2 * h
    total = n * layer + v * h * (1 if c["tie_word_embeddings"] else 2) + h
    return total, n * sum(16 * (a + b) for a, b in shapes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    args = parser.parse_args()
    budget = 0.9 * args.gpu_gib * GIB
    print(f"per GPU, one process: batch {args.batch_size} x {args.tokens} tokens, AdamW, LoRA r 16 on "
          f"{len(LORA_TARGETS)} projections; fits = at most 90% of {args.gpu_gib:g} GiB")
    header = ["model", "params", "mode", "dtype", "ckpt", "weights", "grads+adam", "activations", "total GiB", "fits"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 5 + ["---:"] * 4 + ["---"]) + "|")
    combos = [(size, mode, dtype) for size in LLAMA for mode in ("full", "lora") for dtype in ("fp32", "bf16")]
    # each measurement in a fresh process: freed CPU memory is not returned, and 8B cuts add up
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        measured = {c: pool.submit(per_chunk, *c, args.tokens) for c in combos}
        for size, mode, dtype in combos:
            params, adapters = parameters(size)
            n = LLAMA[size]["num_hidden_layers"]
            layer, outside, layer_input = measured[size, mode, dtype].result()
            for ckpt in (False, True):
                if mode == "full":
                    weights, trained = (4 if dtype == "fp32" else 6) * params, params
                else:
                    weights, trained = (4 if dtype == "fp32" else 2) * params + 4 * adapters, adapters
                state = 12 * trained
                kept = n * layer_input + layer if ckpt else n * layer
                acts = args.batch_size * (kept + outside)
                total = weights + state + acts
                row = [size, f"{params / 1e9:.2f} B", mode, dtype, "yes" if ckpt else "no",
                       f"{weights / GIB:.1f}", f"{state / GIB:.1f}", f"{acts / GIB:.1f}", f"{total / GIB:.1f}",
                       "yes" if total <= budget else "no"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
