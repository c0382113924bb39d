"""How far an injected model's predictions moved from the base model's on general text.

The text is kinject's own: ``general_text.jsonl`` (120 short encyclopedia-style passages on
everyday topics, written for kinject, shipped in the package, nothing fetched), which no method
trains on. Two figures per model (eval kind ``general_kl``):

- ``kl``: the mean over the text's predicted tokens of KL(P_base || P_model) of the next-token
  distributions, in nats per token. P_base is kept as its top ``k`` tokens and one bucket for the
  rest of the vocabulary (both distributions coarsened the same way), which can only lower the KL
  (the log-sum inequality) and is exact as k reaches the vocabulary size.
- ``nll_ratio``: the model's mean negative log-likelihood of the text's own next tokens divided
  by the base model's (1.0: unchanged; above 1: the text became less likely).

The base model's top-k log-probabilities are computed once per (model directory's files,
dtype, text, k) and cached under ``$KINJECT_CACHE/drift``; each evaluation then runs the model
once over the text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from kinject.artifacts import atomic_file, model_fingerprint
from kinject.data.builtin.general import GENERAL_TEXT_FILE, general_text
from kinject.hardware import dtype_name, resolve_dtype
from kinject.training.trainer import pad_right

TOP_K = 100


@dataclass
class Reference:
    """The base model's view of the text: per passage, ``top_ids`` and ``top_logp`` [tokens, k]
    (the top-k next-token ids and log-probabilities at each predicted position) and ``nll`` (the
    mean negative log-likelihood of the text's own next tokens, nats/token, over all passages)."""

    top_ids: list[torch.Tensor]
    top_logp: list[torch.Tensor]
    nll: float
    tokens: int


def _ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [tokenizer(t, add_special_tokens=True).input_ids for t in texts]


def _log_probs(model, tokenizer, ids: list[list[int]], batch_size: int, bf16: bool
               ) -> Iterator[tuple[int, torch.Tensor]]:
    """(passage index, log-probabilities [len - 1, vocab] for positions 1..len-1), in order."""
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for start in range(0, len(ids), batch_size):
        batch = ids[start:start + batch_size]
        x, mask = pad_right(batch, tokenizer.pad_token_id)
        with torch.inference_mode(), autocast:
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits.float(), -1).cpu()
        for b, s in enumerate(batch):
            yield start + b, logp[b, :len(s) - 1]


def _nll(logp: torch.Tensor, ids: list[int]) -> float:
    """The summed negative log-likelihood of the passage's own next tokens ``ids[1:]``."""
    return -logp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item()


def compute_reference(model, tokenizer, texts: Sequence[str], k: int = TOP_K, batch_size: int = 8,
                      bf16: bool = False) -> Reference:
    """The base model's top-k next-token log-probabilities over ``texts``, and its NLL."""
    ids = _ids(tokenizer, texts)
    top_ids, top_logp, nll, n = [None] * len(ids), [None] * len(ids), 0.0, 0
    for i, logp in _log_probs(model, tokenizer, ids, batch_size, bf16):
        top_logp[i], top_ids[i] = logp.topk(min(k, logp.shape[-1]), -1)
        nll += _nll(logp, ids[i])
        n += logp.shape[0]
    return Reference(top_ids, top_logp, nll / max(n, 1), n)


def drift(model, tokenizer, texts: Sequence[str], reference: Reference, batch_size: int = 8,
          bf16: bool = False) -> dict[str, float]:
    """``kl`` (nats/token), ``nll_ratio`` and ``n`` (tokens) of ``model`` against ``reference``."""
    ids = _ids(tokenizer, texts)
    kl, nll, n = 0.0, 0.0, 0
    for i, logp in _log_probs(model, tokenizer, ids, batch_size, bf16):
        p_top = reference.top_logp[i].exp()
        q_top = logp.gather(1, reference.top_ids[i]).exp()
        p_rest = (1 - p_top.sum(-1)).clamp(min=1e-12)
        q_rest = (1 - q_top.sum(-1)).clamp(min=1e-12)
        per = (p_top * (p_top.clamp(min=1e-12).log() - q_top.clamp(min=1e-12).log())).sum(-1)
        per += p_rest * (p_rest.log() - q_rest.log())
        kl += per.clamp(min=0).sum().item()
        nll += _nll(logp, ids[i])
        n += logp.shape[0]
    return {"kl": kl / max(n, 1), "nll_ratio": (nll / max(n, 1)) / reference.nll, "n": n}


class BaseReference:
    """The reference of the base model ``model_name`` (loaded in ``dtype`` only when its cache
    entry is missing) on the shipped general text, loaded or computed on first use."""

    def __init__(self, model_name: str, dtype: str, batch_size: int = 8, bf16: bool = False,
                 path: Path = GENERAL_TEXT_FILE) -> None:
        self.model_name, self.dtype, self.batch_size, self.bf16 = model_name, dtype, batch_size, bf16
        self.texts = general_text(path)
        self._value: Reference | None = None

    def _cache_file(self) -> Path:
        from kinject.models import cache_dir, resolve_model_path

        dtype = dtype_name(resolve_dtype(self.dtype))  # "auto" as it resolves on this machine
        key = json.dumps([model_fingerprint(resolve_model_path(self.model_name)), dtype, self.bf16, TOP_K,
                          hashlib.sha256("\0".join(self.texts).encode()).hexdigest()])
        return cache_dir() / "drift" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"

    def get(self) -> Reference:
        if self._value is None:
            cached = self._cache_file()
            if cached.is_file():
                self._value = Reference(**torch.load(cached, weights_only=True))
            else:
                from kinject.models import load_model

                base = load_model(self.model_name, self.dtype)
                self._value = compute_reference(base.model, base.tokenizer, self.texts, TOP_K, self.batch_size,
                                                self.bf16)
                with atomic_file(cached) as tmp:
                    torch.save(dataclasses.asdict(self._value), tmp)
        return self._value
