"""Reranking retrieved chunks (``retrieval.rerank``).

The first stage (dense, bm25 or hybrid) proposes ``retrieval.candidates`` chunks per question; a
reranker scores each (question, chunk) pair and the ``k`` best by its score are kept. Two kinds:

- a sentence-transformers ``CrossEncoder``: ``retrieval.rerank`` is its local directory (for
  example cross-encoder/ms-marco-MiniLM-L-6-v2 saved with ``save_pretrained``) or a hub id already
  in the local hub cache. No package on the index this project installs from ships cross-encoder
  weights (nothing is fetched at run time);
- query likelihood under a causal LM, ``retrieval.rerank=lm:<model>`` (any ``model=`` value:
  ``lm:smollm2-135m`` is the embedded default): a chunk's score is the log-probability the LM
  gives the question after the chunk and an instruction to write a question about it, the
  zero-shot reranker UPR (Sachan et al. 2022, arXiv 2204.07496; there T0 and T5 models). The
  question is the same for all its candidates, so the sum over its tokens ranks as the mean does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kinject.artifacts import directory_fingerprint
from kinject.errors import UserError
from kinject.retrieval.index import Hit

LM_PREFIX = "lm:"
UPR_PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"


def resolve_reranker_path(name: str) -> str:
    """``name`` as a cross-encoder directory (with its config.json) or a cached hub id; or, for
    ``lm:<model>``, that model's directory (:func:`kinject.models.resolve_model_path`)."""
    if name.startswith(LM_PREFIX):
        from kinject.models import resolve_model_path

        model = name.removeprefix(LM_PREFIX)
        if not model:
            raise UserError(f"retrieval.rerank: {name!r} names no model after {LM_PREFIX!r} (lm:smollm2-135m, lm:DIR)")
        return resolve_model_path(model)
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        if not (path / "config.json").is_file():
            raise UserError(f"retrieval.rerank: {name!r} is not a model directory (no config.json)")
        return str(path)
    from huggingface_hub import try_to_load_from_cache

    if try_to_load_from_cache(name, "config.json") is None:
        raise UserError(f"retrieval.rerank: {name!r} is not a local directory, and not in the hub cache")
    return name


class PairScorer:
    """A reranker: ``scores`` gives each (question, passage) pair a relevance, higher is more
    relevant, and ``rerank`` keeps each question's ``k`` best candidates by it."""

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def rerank(self, questions: Sequence[str], candidates: Sequence[Sequence[Hit]], k: int) -> list[list[Hit]]:
        """The ``k`` best of each question's candidates by :meth:`scores` (ranks anew, ``Hit.score``
        = that score; ties keep the first stage's order)."""
        flat = iter(self.scores([(q, h.chunk.text) for q, hits in zip(questions, candidates) for h in hits]))
        out = []
        for hits in candidates:
            scored = sorted(((next(flat), i) for i in range(len(hits))), key=lambda si: (-si[0], si[1]))
            out.append([Hit(hits[i].chunk, float(s), rank) for rank, (s, i) in enumerate(scored[:k], start=1)])
        return out


class Reranker(PairScorer):
    """A cross-encoder scoring (question, passage) pairs; higher is more relevant."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        from kinject.hardware import compute_device

        self.name = name
        self.path = resolve_reranker_path(name)
        self.batch_size = batch_size
        try:
            self.model = CrossEncoder(self.path, device=str(compute_device()))
        except (OSError, ValueError) as exc:
            raise UserError(f"retrieval.rerank: {name!r} could not be loaded ({str(exc).splitlines()[0]})") from None
        if int(self.model.num_labels) != 1:
            raise UserError(f"retrieval.rerank: {name!r} has {self.model.num_labels} output labels; "
                            "a reranker scores with one")
        self.fingerprint = directory_fingerprint(self.path) if Path(self.path).is_dir() else None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint}

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The cross-encoder's score of each (question, passage) pair, in one batched pass."""
        return self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False,
                                  convert_to_numpy=True).tolist() if pairs else []


class QueryLikelihoodReranker(PairScorer):
    """``lm:<model>``: a causal LM scoring (question, passage) pairs by log p(question | passage,
    :data:`UPR_PROMPT`), summed over the question's tokens; higher is more relevant."""

    def __init__(self, name: str, batch_size: int = 16) -> None:
        from kinject.models import load_model

        self.name = name
        self.path = resolve_reranker_path(name)
        self.batch_size = batch_size
        loaded = load_model(name.removeprefix(LM_PREFIX))
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.fingerprint = directory_fingerprint(self.path) if Path(self.path).is_dir() else None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint,
                "scoring": "query likelihood (UPR)", "prompt": UPR_PROMPT}

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """log p(question | prompt around passage) of each (question, passage) pair, summed over
        the question's tokens, batches of ``batch_size`` pairs."""
        import torch

        from kinject.training.trainer import pad_right

        tok, device = self.tokenizer, next(self.model.parameters()).device
        out: list[float] = []
        with torch.inference_mode():
            for lo in range(0, len(pairs), self.batch_size):
                batch = pairs[lo: lo + self.batch_size]
                heads = [tok(UPR_PROMPT.format(passage=p)).input_ids for _, p in batch]
                asked = [tok(" " + q.strip(), add_special_tokens=False).input_ids for q, _ in batch]
                ids, mask = pad_right([h + q for h, q in zip(heads, asked)], tok.pad_token_id)
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                for i, (h, q) in enumerate(zip(heads, asked)):
                    logp = torch.log_softmax(logits[i, len(h) - 1: len(h) + len(q) - 1].float(), dim=-1)
                    out.append(logp.gather(-1, torch.tensor(q, device=device)[:, None]).sum().item())
        return out


def open_reranker(name: str) -> PairScorer:
    """The reranker ``retrieval.rerank`` names: ``lm:<model>`` query likelihood, else a cross-encoder."""
    return QueryLikelihoodReranker(name) if name.startswith(LM_PREFIX) else Reranker(name)
