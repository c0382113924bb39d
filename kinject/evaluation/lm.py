"""Batched greedy generation and log-likelihood scoring that share one prompt prefix.

Every probe of a benchmark shares the same few-shot header, so its key/value cache is computed
once and repeated across each batch; only the probe's own tokens are run, and a multiple-choice
question runs once for all its choices. On the default model this measured 5.7x (QA) and 8.3x
(MCQ) faster than plain per-prompt calls (benchmarks/eval_speed.py).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from kinject.training.trainer import pad_left


@functools.lru_cache(maxsize=8)
def newline_ids(tokenizer) -> frozenset[int]:
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    ids = {i for i, t in enumerate(vocab) if t is not None and ("\n" in t or "Ċ" in t or "<0x0A>" in t)}
    return frozenset(ids)


class PrefixLM:
    """Scores and continues many prompts that all start with ``prefix`` (may be empty).

    ``batch_size`` is the number of sequences per forward pass; ``bf16`` runs under CPU/GPU
    bfloat16 autocast.
    """

    def __init__(self, model, tokenizer, prefix: str, batch_size: int = 16, bf16: bool = True,
                 progress: bool = True):
        self.model, self.tok = model, tokenizer
        self.batch_size, self.bf16, self.progress = batch_size, bf16, progress
        self.device = next(model.parameters()).device
        # The cache ends before the prefix's trailing whitespace, which is carried into every
        # prompt instead: BPE tokenizers merge "\n\n" differently when text follows it, and the
        # prompt must be tokenized as the whole string would be.
        cached = prefix.rstrip()
        self.carry = prefix[len(cached):]
        self.prefix_ids = tokenizer(cached, add_special_tokens=True).input_ids if cached else []
        self._prefix_cache = None
        if self.prefix_ids:
            with self._ctx():
                out = model(torch.tensor([self.prefix_ids], device=self.device), use_cache=True)
            self._prefix_cache = out.past_key_values

    def _ctx(self):
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast)
        return stack

    def _cache_for(self, batch: int):
        if self._prefix_cache is None:
            return None
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(batch)
        return cache

    def _batches(self, n: int, desc: str) -> Iterator[range]:
        starts = range(0, n, self.batch_size)
        for s in tqdm(starts, desc=desc, disable=not self.progress, leave=False):
            yield range(s, min(n, s + self.batch_size))

    def _encode(self, text: str) -> list[int]:
        # Without a prefix the tokenizer's own special tokens (e.g. BOS) start the sequence.
        return self.tok(self.carry + text, add_special_tokens=not self.prefix_ids).input_ids

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), each [batch, longest]: padding on the left, between prefix and prompt.

        Positions are computed from the mask, so the padding changes no real token's position.
        """
        ids, mask = pad_left(seqs, self.tok.pad_token_id)
        return ids.to(self.device), mask.to(self.device)

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 32, desc: str = "generate") -> list[str]:
        """Greedy continuation of ``prefix + prompt`` for each prompt, cut at the first newline."""
        newline = newline_ids(self.tok)
        eos = self.tok.eos_token_id
        p = len(self.prefix_ids)
        encoded = [self._encode(t) for t in prompts]
        results: list[str] = [""] * len(prompts)
        for idx in self._batches(len(prompts), desc):
            seqs = [encoded[i] for i in idx]
            ids, mask = self._left_pad(seqs)
            full_mask = torch.cat([torch.ones(len(seqs), p, dtype=mask.dtype, device=self.device), mask], 1)
            pos = (p + mask.cumsum(1) - 1).clamp(min=p)
            cache = self._cache_for(len(seqs))
            out_ids: list[list[int]] = [[] for _ in seqs]
            done = torch.zeros(len(seqs), dtype=torch.bool, device=self.device)
            with self._ctx():
                out = self.model(input_ids=ids, attention_mask=full_mask, position_ids=pos,
                                 past_key_values=cache, use_cache=True)
                for _ in range(max_new_tokens):
                    nxt = out.logits[:, -1].argmax(-1)
                    for j, t in enumerate(nxt.tolist()):
                        if not done[j]:
                            out_ids[j].append(t)
                            if t == eos or t in newline:
                                done[j] = True
                    if bool(done.all()):
                        break
                    full_mask = torch.cat([full_mask, torch.ones_like(full_mask[:, :1])], 1)
                    pos = pos[:, -1:] + 1
                    out = self.model(input_ids=nxt[:, None], attention_mask=full_mask, position_ids=pos,
                                     past_key_values=out.past_key_values, use_cache=True)
            for j, i in enumerate(idx):
                text = self.tok.decode(out_ids[j], skip_special_tokens=True)
                results[i] = text.split("\n", 1)[0].strip()
        return results

    def score_choices(self, contexts: Sequence[str], choices: Sequence[Sequence[str]], desc: str = "score"
                      ) -> list[list[tuple[float, int]]]:
        """For each context and each of its continuations: (summed log p(continuation |
        prefix + context), number of continuation tokens).

        The context runs once and its cache is shared by its continuations. Context and
        continuation are tokenized apart and joined, as lm-evaluation-harness does.
        """
        p = len(self.prefix_ids)
        enc_ctx = [self._encode(c) for c in contexts]
        enc_ch = [[self.tok(c, add_special_tokens=False).input_ids for c in cs] for cs in choices]
        for ctx, cs, raw in zip(enc_ctx, enc_ch, choices):
            if not ctx or not all(cs):
                raise ValueError(f"empty context or continuation among {raw!r}")
        results: list[list[tuple[float, int]]] = [[] for _ in contexts]
        for idx in self._batches(len(contexts), desc):
            ctx = [enc_ctx[i] for i in idx]
            ids, mask = self._left_pad(ctx)
            full_mask = torch.cat([torch.ones(len(ctx), p, dtype=mask.dtype, device=self.device), mask], 1)
            pos = (p + mask.cumsum(1) - 1).clamp(min=p)
            rows = [(b, k) for b, i in enumerate(idx) for k in range(len(enc_ch[i]))]
            conts = [enc_ch[idx[b]][k] for b, k in rows]
            width = max(len(c) for c in conts)
            row_b = torch.tensor([b for b, _ in rows], device=self.device)
            cont_ids = torch.tensor([c + [self.tok.pad_token_id] * (width - len(c)) for c in conts], device=self.device)
            cont_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in conts], device=self.device)
            with self._ctx():
                out = self.model(input_ids=ids, attention_mask=full_mask, position_ids=pos,
                                 past_key_values=self._cache_for(len(ctx)), use_cache=True)
                first = torch.log_softmax(out.logits[:, -1].float(), -1)
                cache = out.past_key_values
                cache.batch_select_indices(row_b)
                out2 = self.model(input_ids=cont_ids, attention_mask=torch.cat([full_mask[row_b], cont_mask], 1),
                                  position_ids=pos[row_b, -1:] + 1 + torch.arange(width, device=self.device),
                                  past_key_values=cache, use_cache=True)
            rest = torch.log_softmax(out2.logits.float(), -1)
            for r, ((b, _), cont) in enumerate(zip(rows, conts)):
                ll = first[b, cont[0]].item() + sum(rest[r, t - 1, cont[t]].item() for t in range(1, len(cont)))
                results[idx[b]].append((ll, len(cont)))
        return results
