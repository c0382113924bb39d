"""Training sentences for the paraphraser and their targets from real paraphrases.

A training sentence states one fact and contains its answer. Its *answer position* is the token
that predicts the answer's first token (the last token before the answer). The target of a
sentence is, for every compared hidden-state output, the per-dimension mean and std of the frozen
model's hidden state at the answer position of each of its paraphrases (the sentence itself
excluded). Targets are computed once and cached on disk, keyed by model, data and settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from kinject.artifacts import atomic_file
from kinject.data.schema import Fact
from kinject.models import cache_dir
from kinject.training.trainer import pad_right


@dataclass
class Tokenized:
    """A text cut after its answer position: ``ids`` (ids[-1] predicts the answer's first token)
    and ``keep`` (True on tokens inside an entity span, and on special tokens)."""

    ids: list[int]
    keep: list[bool]


def tokenize_to_answer(tokenizer: Any, text: str, answer: str, entities: Sequence[str] = (),
                       max_length: int = 192) -> Tokenized | None:
    """``text``'s tokens up to the answer position (the answer's last occurrence), or None when the
    answer is absent, starts the text, or starts beyond ``max_length`` tokens."""
    start = text.rfind(answer) if answer else -1
    if start <= 0:
        return None
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    first = next((i for i, (a, b) in enumerate(offsets) if b > start and b > a), None)
    if first is None or first == 0 or first > max_length:
        return None
    spans = [(i, i + len(e)) for e in entities if e for i in _occurrences(text, e)]
    # special tokens (empty offsets, e.g. BOS) are kept like entities
    keep = [b <= a or any(a < e_end and b > e_start for e_start, e_end in spans) for a, b in offsets[:first]]
    return Tokenized(list(enc["input_ids"][:first]), keep)


def _occurrences(text: str, sub: str) -> list[int]:
    out, i = [], text.find(sub)
    while i >= 0:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


@dataclass
class TrainingSentence:
    """One sentence to train on: its tokens to the answer position, and its target (K, d) x 2."""

    id: str
    tokens: Tokenized
    target_mean: torch.Tensor
    target_std: torch.Tensor


def answer_states(model: Any, rows: Sequence[list[int]], pad_id: int, kl_layers: Sequence[int]) -> torch.Tensor:
    """Hidden states (K, rows, d) at each row's last token, for the hidden-state outputs
    ``kl_layers`` (indices into ``output_hidden_states``). Gradients flow if enabled."""
    ids, mask = pad_right(rows, pad_id)
    device = next(model.parameters()).device
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
    last = (mask.sum(1) - 1).to(device)
    take = torch.arange(len(rows), device=device)
    return torch.stack([out.hidden_states[k][take, last].float() for k in kl_layers])


def data_hash(facts: Sequence[Fact], paraphrases: dict[str, list[str]]) -> str:
    """sha256 (16 hex digits) of the sentences, answers, entities and paraphrases."""
    payload = [[f.id, f.text, f.answer, f.entities, paraphrases.get(f.id, [])] for f in facts]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]


def build_training_sentences(model: Any, tokenizer: Any, facts: Sequence[Fact], paraphrases: dict[str, list[str]],
                             kl_layers: Sequence[int], max_paraphrases: int, max_length: int, model_key: str,
                             batch_size: int = 64) -> list[TrainingSentence]:
    """Tokenize every fact and attach its target (from the cache when present).

    A fact is skipped when its answer is not found in it, or fewer than two of its first
    ``max_paraphrases`` paraphrases contain the answer. The entity spans of the gold mask are the
    fact's ``entities`` and its answer.
    """
    usable: list[tuple[Fact, Tokenized, list[list[int]]]] = []
    for fact in facts:
        tokens = tokenize_to_answer(tokenizer, fact.text, fact.answer, [*fact.entities, fact.answer], max_length)
        paras = [tokenize_to_answer(tokenizer, p, fact.answer, max_length=max_length)
                 for p in paraphrases.get(fact.id, [])[:max_paraphrases]]
        paras = [p.ids for p in paras if p is not None]
        if tokens is not None and len(paras) >= 2:
            usable.append((fact, tokens, paras))
    if not usable:
        return []
    key = hashlib.sha256(json.dumps([model_key, data_hash(facts, paraphrases), list(kl_layers), max_paraphrases,
                                     max_length]).encode()).hexdigest()[:16]
    path = cache_dir() / "lapael-targets" / f"{key}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        means, stds = cached["mean"], cached["std"]
    else:
        flat = [(i, ids) for i, (_, _, paras) in enumerate(usable) for ids in paras]
        states: list[torch.Tensor] = []
        with torch.no_grad():
            for b in range(0, len(flat), batch_size):
                states.append(answer_states(model, [ids for _, ids in flat[b: b + batch_size]],
                                            tokenizer.pad_token_id, kl_layers))
        allstates = torch.cat(states, dim=1)
        owner = torch.tensor([i for i, _ in flat])
        means = torch.stack([allstates[:, owner == i].mean(1) for i in range(len(usable))])
        stds = torch.stack([allstates[:, owner == i].std(1) for i in range(len(usable))])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            torch.save({"mean": means, "std": stds}, tmp)
    return [TrainingSentence(f.id, tok, means[i], stds[i]) for i, (f, tok, _) in enumerate(usable)]
