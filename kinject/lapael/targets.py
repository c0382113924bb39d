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

TOKEN_KINDS = ("answer", "entity", "other")  # and "special" (BOS, ...): kept, never counted


@dataclass
class Tokenized:
    """A training sentence's tokens ``ids``, the kind of each (``answer``: inside an occurrence of
    the answer; ``entity``: inside the subject or another listed entity; ``special``; ``other``)
    and ``position``: the answer position, the token whose successor is the answer's first token
    (``ids[position]`` predicts it)."""

    ids: list[int]
    kinds: list[str]
    position: int

    @property
    def keep(self) -> list[bool]:
        """The gold mask: True on answer, entity and special tokens (left unperturbed)."""
        return [k != "other" for k in self.kinds]


def tokenize_sentence(tokenizer, text: str, answer: str, entities: Sequence[str] = (),
                      max_length: int = 192, whole: bool = True) -> Tokenized | None:
    """``text``'s tokens with their kinds and the answer position (before the answer's last
    occurrence), or None when the answer is absent, starts the text, or starts beyond
    ``max_length`` tokens. ``whole``: every token to the end of the text (at most ``max_length``;
    LaPael's training sentences); else the tokens up to the answer position only."""
    start = text.rfind(answer) if answer else -1
    if start <= 0:
        return None
    ids, kinds, offsets = token_kinds(tokenizer, text, [answer], entities)
    first = next((i for i, (a, b) in enumerate(offsets) if b > start and b > a), None)
    if first is None or first == 0 or first > max_length:
        return None
    end = min(len(ids), max_length) if whole else first
    return Tokenized(ids[:end], kinds[:end], first - 1)


def token_kinds(tokenizer, text: str, answers: Sequence[str], entities: Sequence[str]
                ) -> tuple[list[int], list[str], list[tuple[int, int]]]:
    """``text``'s token ids (special tokens added), each token's kind (see :class:`Tokenized`:
    ``answer`` over any occurrence of an ``answers`` phrase, ``entity`` over one of ``entities``)
    and its character offsets."""
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans = {kind: [(i, i + len(p)) for p in dict.fromkeys(phrases) if p for i in _occurrences(text, p)]
             for kind, phrases in (("answer", answers), ("entity", entities))}
    kinds = [_kind(a, b, spans["answer"], spans["entity"]) for a, b in offsets]
    return list(enc["input_ids"]), kinds, offsets


def _kind(a: int, b: int, answers: list[tuple[int, int]], entities: list[tuple[int, int]]) -> str:
    """The kind of the token covering characters [a, b) (empty: a special token)."""
    if b <= a:
        return "special"
    if any(a < e and b > s for s, e in answers):
        return "answer"
    return "entity" if any(a < e and b > s for s, e in entities) else "other"


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


def answer_states(model: Any, rows: Sequence[list[int]], pad_id: int, kl_layers: Sequence[int],
                  positions: Sequence[int] | None = None) -> torch.Tensor:
    """Hidden states (K, rows, d) at each row's ``positions`` (None: its last token), for the
    hidden-state outputs ``kl_layers`` (indices into ``output_hidden_states``). The decoder runs
    without the LM head. Gradients flow if enabled."""
    ids, mask = pad_right(rows, pad_id)
    device = next(model.parameters()).device
    out = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
    at = (mask.sum(1) - 1) if positions is None else torch.tensor(list(positions))
    take = torch.arange(len(rows), device=device)
    return torch.stack([out.hidden_states[k][take, at.to(device)].float() for k in kl_layers])


def data_hash(facts: Sequence[Fact], paraphrases: dict[str, list[str]]) -> str:
    """sha256 (16 hex digits) of the sentences, answers, entities and paraphrases."""
    payload = [[f.id, f.text, f.answer, f.entities, paraphrases.get(f.id, [])] for f in facts]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]


def fact_entities(fact: Fact) -> list[str]:
    """The spans of ``fact`` the gold mask keeps besides its answer: its subject and listed entities."""
    return [e for e in dict.fromkeys([fact.subject, *fact.entities]) if e]


def build_training_sentences(model: Any, tokenizer: Any, facts: Sequence[Fact], paraphrases: dict[str, list[str]],
                             kl_layers: Sequence[int], max_paraphrases: int, max_length: int, model_key: str,
                             whole: bool = True, batch_size: int = 64) -> list[TrainingSentence]:
    """Tokenize every fact (``whole``: to its end, else to the answer position) and attach its
    target (from the cache when present).

    A fact is skipped when its answer is not found in it, or fewer than two of its first
    ``max_paraphrases`` paraphrases contain the answer. The gold mask keeps the answer, the subject
    and the fact's ``entities``. The targets depend only on the paraphrases cut at their answer
    position (the model is causal), so ``whole`` shares them.
    """
    usable: list[tuple[Fact, Tokenized, list[list[int]]]] = []
    for fact in facts:
        tokens = tokenize_sentence(tokenizer, fact.text, fact.answer, fact_entities(fact), max_length, whole)
        paras = [tokenize_sentence(tokenizer, p, fact.answer, max_length=max_length, whole=False)
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
