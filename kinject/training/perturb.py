"""Training with perturbed copies: each sample is repeated, copy 0 kept clean (unless
``noise.clean_copy=false``), the others perturbed.

This is the shared machinery of LaPael and the noise baselines it is compared with (NEFTune,
fixed noise). A :class:`Perturbation` says *where* it acts and *what* it does:

- ``site="embeddings"``: the output of the input embedding layer, shape (rows, T, d);
- ``site="mlp_input"``: the input of the MLP of each decoder layer in ``layers``, i.e. the hidden
  state after the post-attention norm, shape (rows, T, d); the residual stream is not touched.

Hooks are attached with PyTorch forward (pre-)hooks on the model's own modules, so any
transformers decoder whose layers have an ``mlp`` submodule works (Llama, Qwen2, Mistral, Gemma),
and :func:`perturbed` removes them on exit: the trained model is the plain model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from kinject.checks import Check, at_least, layer_spec, non_negative
from kinject.errors import UserError

# fn(hidden (rows, T, d), layer index or -1 for embeddings, per-row batch tensors such as
# "attention_mask" (rows, T), restricted to the perturbed rows) -> perturbed hidden (rows, T, d)
PerturbFn = Callable[[torch.Tensor, int, dict[str, torch.Tensor]], torch.Tensor]
# adversary(loss of the batch as it stands, model, state) -> loss to back-propagate
Adversary = Callable[[Callable[[], torch.Tensor], Any, dict[str, Any]], torch.Tensor]
SITES = ("embeddings", "mlp_input")


@dataclass
class NoiseConfig:
    """The ``noise:`` config section. ``copies``: rows per sample in a batch (copy 0 clean), for
    every perturbation method. ``neftune_alpha``: NEFTune's noise scale (5 in LaPael's comparison).
    ``layers``/``scale``: the fixed multiplicative noise of ``noise-uniform``/``noise-gaussian``,
    ``h * (1 + scale * u)`` on the MLP inputs of the decoder layers ``layers`` selects (":5" =
    LaPael's perturbed layers 0..4). ``freelb_*``: FreeLB's initial perturbation magnitude, ascent
    step size (L2-normalised gradient), number of forward/backward passes per batch, and the L2
    bound of the perturbation (0 = unbounded); LaPael's setting 0.6 / 0.1 / 2.
    ``clean_copy``: copy 0 of each sample stays unperturbed (kinject's default, for every
    perturbation method); ``false`` perturbs every copy, as LaPael's code runs its NEFTune
    baseline."""

    copies: int = 4
    neftune_alpha: float = 5.0
    layers: str = ":5"
    scale: float = 0.1
    freelb_init: float = 0.6
    freelb_step: float = 0.1
    freelb_steps: int = 2
    freelb_max_norm: float = 0.0
    clean_copy: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "copies": at_least(2), "neftune_alpha": non_negative, "layers": layer_spec, "scale": non_negative,
        "freelb_init": non_negative, "freelb_step": non_negative, "freelb_steps": at_least(1),
        "freelb_max_norm": non_negative}



@dataclass
class Perturbation:
    """Where and how copies 1..N-1 of each sample (every copy, without ``clean_copy``) are
    perturbed during training.

    ``state`` is set before each forward pass: ``rows`` (bool, (batch,)) selects the rows to
    perturb; every other entry is a per-row tensor (``attention_mask`` (batch, T), a token mask
    ...) that ``fn`` receives cut down to those rows. An ``adversary`` (FreeLB) replaces the
    training loss computation: it sets ``state`` entries (the perturbation), calls the plain loss
    one or more times and returns the loss to back-propagate.
    """

    site: str
    fn: PerturbFn
    layers: Sequence[int] = ()
    state: dict[str, Any] = field(default_factory=dict)
    adversary: Adversary | None = None
    clean_copy: bool = True

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"unknown perturbation site {self.site!r}")

    def apply(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        rows = self.state.get("rows")
        if rows is None or not bool(rows.any()):
            return hidden
        context = {k: v[rows] for k, v in self.state.items() if k != "rows" and v is not None}
        noisy = self.fn(hidden[rows], layer, context)
        if bool(rows.all()):
            return noisy.to(hidden.dtype)
        out = hidden.clone()
        out[rows] = noisy.to(hidden.dtype)
        return out


def decoder_layers(model: Any) -> Sequence[torch.nn.Module]:
    """The decoder layers of a transformers causal LM (also under a peft wrapper)."""
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and all(hasattr(m, "mlp") for m in module):
            return module
    raise UserError(f"{type(model).__name__}: no decoder layers with an 'mlp' submodule found")


@contextlib.contextmanager
def perturbed(model: Any, perturbation: Perturbation) -> Iterator[None]:
    """Attach ``perturbation``'s hooks to ``model`` for the duration of the block."""
    handles = []
    if perturbation.site == "embeddings":
        emb = model.get_input_embeddings()
        handles.append(emb.register_forward_hook(lambda _m, _args, out: perturbation.apply(out, -1)))
    else:
        layers = decoder_layers(model)
        for i in perturbation.layers:
            if not 0 <= i < len(layers):
                raise UserError(f"perturbed layer {i} is out of range (the model has {len(layers)} layers)")
            handles.append(layers[i].mlp.register_forward_pre_hook(
                lambda _m, args, i=i: (perturbation.apply(args[0], i), *args[1:])))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
