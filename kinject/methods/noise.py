"""Noise baselines for latent paraphrasing: the same copies-per-sample budget, untrained noise.

``neftune`` (Jain et al. 2023): during training only, copies 1..N-1 of each sample get uniform
noise in [-1, 1] added to their input embeddings, scaled by ``alpha / sqrt(L * d)`` (L the row's
number of tokens, d the embedding size); copy 0 is clean. Evaluation sees the plain model.
"""

from __future__ import annotations

import math

import torch

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.methods.finetune import document_texts, finetune
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.training.perturb import Perturbation


def neftune_noise(alpha: float):
    """The NEFTune perturbation of embeddings (rows, T, d); ``mask`` (rows, T) gives each row's L."""

    def fn(hidden: torch.Tensor, layer: int, mask: torch.Tensor | None) -> torch.Tensor:
        rows, width, dim = hidden.shape
        lengths = mask.sum(1) if mask is not None else torch.full((rows,), width, device=hidden.device)
        scale = alpha / torch.sqrt(lengths.clamp(min=1).to(hidden.dtype) * dim)
        return hidden + torch.empty_like(hidden).uniform_(-1, 1) * scale[:, None, None]

    return fn


def check_noise(corpus: Corpus, cfg: RunConfig) -> None:
    if cfg.noise.copies < 2:
        raise UserError(f"noise.copies must be >= 2 (copy 0 is clean), got {cfg.noise.copies}")
    if not math.isfinite(cfg.noise.neftune_alpha) or cfg.noise.neftune_alpha < 0:
        raise UserError(f"noise.neftune_alpha must be a finite number >= 0, got {cfg.noise.neftune_alpha}")


@register_method("neftune", "fine-tuning on the documents, noise.copies copies per sample, NEFTune embedding "
                 "noise on all but the first", check=check_noise)
def neftune(req: InjectRequest) -> Injected:
    noise = Perturbation("embeddings", neftune_noise(req.cfg.noise.neftune_alpha))
    return finetune(req, document_texts(req.corpus), copies=req.cfg.noise.copies, perturbation=noise)
