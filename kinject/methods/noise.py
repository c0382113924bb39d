"""Noise baselines for latent paraphrasing: the same copies-per-sample budget, untrained noise.

Every method here trains on the documents with ``noise.copies`` copies of each sample per batch,
copy 0 clean and the others perturbed, during training only (evaluation sees the plain model):

- ``neftune`` (Jain et al. 2023): uniform noise in [-1, 1] added to the input embeddings, scaled
  by ``alpha / sqrt(L * d)`` (L the row's number of tokens, d the embedding size);
- ``noise-uniform`` / ``noise-gaussian``: fixed multiplicative noise ``h * (1 + scale * u)`` on the
  MLP inputs of the layers LaPael's paraphraser perturbs, ``u`` uniform in [-1, 1] or N(0, 1);
- ``freelb`` (Zhu et al. 2020): an adversarial perturbation of the input embeddings, started
  at random and moved up the loss gradient; the parameter gradient is averaged over the
  ``noise.freelb_steps`` passes (so it costs that many forward/backward passes per batch).
"""

from __future__ import annotations

import torch

from kinject.checks import check_section
from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.methods.finetune import document_texts, finetune
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.training.perturb import Perturbation, decoder_layers
from kinject.training.trainer import PACKING_WITH_COPIES, layer_slice


def neftune_noise(alpha: float):
    """The NEFTune perturbation of embeddings (rows, T, d); the attention mask (rows, T) gives each
    row's L."""

    def fn(hidden: torch.Tensor, layer: int, context: dict[str, torch.Tensor]) -> torch.Tensor:
        rows, width, dim = hidden.shape
        mask = context.get("attention_mask")
        lengths = mask.sum(1) if mask is not None else torch.full((rows,), width, device=hidden.device)
        scale = alpha / torch.sqrt(lengths.clamp(min=1).to(hidden.dtype) * dim)
        return hidden + torch.empty_like(hidden).uniform_(-1, 1) * scale[:, None, None]

    return fn


def check_noise(corpus: Corpus, cfg: RunConfig) -> None:
    check_section(cfg.noise, "noise")
    if cfg.train.packing:
        raise UserError(PACKING_WITH_COPIES)


@register_method("neftune", "fine-tuning on the documents, noise.copies copies per sample, NEFTune embedding "
                 "noise on all but the first", check=check_noise)
def neftune(req: InjectRequest) -> Injected:
    noise = Perturbation("embeddings", neftune_noise(req.cfg.noise.neftune_alpha))
    return finetune(req, document_texts(req.corpus), copies=req.cfg.noise.copies, perturbation=noise)


def multiplicative_noise(kind: str, scale: float):
    """Fixed multiplicative noise for MLP inputs (rows, T, d): ``h * (1 + scale * u)`` with ``u``
    uniform in [-1, 1] (``kind="uniform"``) or standard normal (``"gaussian"``), per element."""

    def fn(hidden: torch.Tensor, layer: int, context: dict[str, torch.Tensor]) -> torch.Tensor:
        u = torch.empty_like(hidden).uniform_(-1, 1) if kind == "uniform" else torch.randn_like(hidden)
        return hidden * (1 + scale * u)

    return fn


def _fixed_noise(req: InjectRequest, kind: str) -> Injected:
    noise = req.cfg.noise
    layers = list(layer_slice(noise.layers, len(decoder_layers(req.loaded.model)), "noise.layers"))
    perturbation = Perturbation("mlp_input", multiplicative_noise(kind, noise.scale), layers=layers)
    return finetune(req, document_texts(req.corpus), copies=noise.copies, perturbation=perturbation,
                    noise_layers=layers)


@register_method("noise-uniform", "fine-tuning on the documents, noise.copies copies per sample, uniform "
                 "multiplicative noise on the MLP inputs of noise.layers on all but the first", check=check_noise)
def noise_uniform(req: InjectRequest) -> Injected:
    return _fixed_noise(req, "uniform")


@register_method("noise-gaussian", "as noise-uniform, with Gaussian noise", check=check_noise)
def noise_gaussian(req: InjectRequest) -> Injected:
    return _fixed_noise(req, "gaussian")


class FreeLB:
    """FreeLB's adversary on the input embeddings of the perturbed rows.

    Per batch: ``delta`` (rows, T, d) starts uniform in [-1, 1] on real tokens, scaled by
    ``init / sqrt(L * d)``; then ``steps`` passes, each computing the loss at ``embeddings + delta``
    and, between passes, moving ``delta`` by ``step`` along its L2-normalised gradient (projected
    onto the ball of radius ``max_norm`` when > 0). Returns the mean of the passes' losses, so the
    parameter gradient is FreeLB's average over the ascent.
    """

    def __init__(self, init: float, step: float, steps: int, max_norm: float = 0.0) -> None:
        self.init, self.step, self.steps, self.max_norm = init, step, steps, max_norm

    def perturbation(self) -> Perturbation:
        return Perturbation("embeddings", self.add_delta, adversary=self.loss)

    @staticmethod
    def add_delta(hidden: torch.Tensor, layer: int, context: dict[str, torch.Tensor]) -> torch.Tensor:
        return hidden + context["delta"].to(hidden.dtype)

    def loss(self, compute, model, state: dict) -> torch.Tensor:
        mask = state["attention_mask"]
        dim = model.get_input_embeddings().weight.shape[1]
        lengths = mask.sum(1).clamp(min=1).float()
        delta = torch.empty(*mask.shape, dim, device=mask.device).uniform_(-1, 1) * mask[..., None]
        delta = delta * (self.init / torch.sqrt(lengths * dim))[:, None, None]
        losses = []
        for k in range(self.steps):
            delta.requires_grad_(True)
            state["delta"] = delta
            losses.append(compute())
            if k == self.steps - 1:
                break
            (grad,) = torch.autograd.grad(losses[-1], delta, retain_graph=True)
            norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
            delta = (delta + self.step * grad / norm[:, None, None]).detach()
            if self.max_norm > 0:
                scale = (self.max_norm / delta.flatten(1).norm(dim=1).clamp(min=1e-12)).clamp(max=1.0)
                delta = delta * scale[:, None, None]
        state.pop("delta", None)
        return torch.stack(losses).mean()


@register_method("freelb", "fine-tuning on the documents, noise.copies copies per sample, FreeLB adversarial "
                 "embedding perturbation on all but the first", check=check_noise)
def freelb(req: InjectRequest) -> Injected:
    noise = req.cfg.noise
    adversary = FreeLB(noise.freelb_init, noise.freelb_step, noise.freelb_steps, noise.freelb_max_norm)
    return finetune(req, document_texts(req.corpus), copies=noise.copies, perturbation=adversary.perturbation(),
                    freelb_steps=noise.freelb_steps)
