"""The latent paraphraser: one small network per perturbed decoder layer, acting on the MLP input.

For a token's hidden state ``h`` (size d, after the post-attention norm) at a perturbed layer:

- ``mu = W h`` and ``alpha = A(mu + eps)`` with ``eps ~ N(0, I)`` (``A``: Linear-ReLU-Linear);
- ``z = softplus(alpha)`` with beta = ln 2, so ``z = 1`` where ``alpha = 0`` (noise around 1);
- ``m`` in [0, 1]: the token mask, a relaxed Bernoulli sample of ``Linear(d, 1)(h)`` at
  temperature ``mask_temperature`` (or, while the paraphraser is trained, the gold mask: 0 on
  entity tokens, 1 elsewhere);
- ``h' = h * ((1 - m) + m * z)``: a token is kept (m = 0) or scaled elementwise (m = 1).

The residual stream is not touched. About 3 d^2 parameters per layer. The module is attached with
the hooks of :mod:`kinject.training.perturb` and removed after training: the injected model is the
plain model. On disk a paraphraser is a directory: ``paraphraser.safetensors`` (float16 weights)
and ``paraphraser.json`` (the architecture it fits, its settings and how it was trained).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kinject.artifacts import file_sha256, staged_directory
from kinject.data.jsonl import read_json
from kinject.errors import UserError
from kinject.training.perturb import Perturbation, decoder_layers

FORMAT = "kinject-lapael-paraphraser/1"
WEIGHTS = "paraphraser.safetensors"
META = "paraphraser.json"
SHIPPED = Path(__file__).parent / "shipped"


class ParaphraserLayer(nn.Module):
    """The noise and mask networks of one decoder layer (hidden size ``d``)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.mu = nn.Linear(d, d)
        self.alpha = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.mask = nn.Linear(d, 1)

    def scale(self, h: torch.Tensor) -> torch.Tensor:
        """The multiplicative noise ``z`` (..., d) for hidden states ``h`` (..., d)."""
        mu = self.mu(h)
        return nn.functional.softplus(self.alpha(mu + torch.randn_like(mu)), beta=math.log(2.0))

    def mask_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (...,) that a token is perturbed."""
        return self.mask(h).squeeze(-1)


def relaxed_bernoulli(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """A soft sample in (0, 1) of Bernoulli(sigmoid(logits)) (the binary Concrete distribution)."""
    u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)


class LatentParaphraser(nn.Module):
    """One :class:`ParaphraserLayer` per perturbed decoder layer.

    ``meta`` describes what the paraphraser fits (hidden size, layer count, model name) and how it
    was trained; it is saved beside the weights.
    """

    def __init__(self, hidden_size: int, layers: list[int], mask_temperature: float = 0.1,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.layers = list(layers)
        self.mask_temperature = mask_temperature
        self.nets = nn.ModuleDict({str(i): ParaphraserLayer(hidden_size) for i in self.layers})
        self.meta = dict(meta or {})
        self.mask_logits: dict[int, torch.Tensor] = {}  # recorded per layer while gold masks are given
        self.oracle_ratio = 0.5  # lapael.mask=oracle: the share of unmarked tokens perturbed
        self.record_mask = False  # record the learned mask's logits (kinject.lapael.mask_rates)

    def perturb(self, h: torch.Tensor, layer: int, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """Perturb hidden states ``h`` (rows, T, d) of decoder layer ``layer``; computed in the
        paraphraser's dtype (the caller casts the result back to the model's).

        ``context["keep"]`` (rows, T; bool), when present, is the gold mask (True = entity token,
        left alone; everything else perturbed) and the mask logits are recorded for the mask loss.
        ``context["keep_tokens"]`` (rows, T; bool; ``lapael.mask=oracle``) is an oracle mask in
        injection: marked tokens left alone, each other token perturbed with probability
        ``oracle_ratio``. Otherwise the mask is sampled from the learned logits (recorded too while
        ``record_mask`` is set).
        """
        net = self.nets[str(layer)]
        h = h.to(net.mu.weight.dtype)  # a bf16 model's states meet the paraphraser's fp32 weights
        keep, oracle = context.get("keep"), context.get("keep_tokens")
        if keep is not None:
            self.mask_logits[layer] = net.mask_logits(h.detach())
            m = (~keep).to(h.dtype)
        elif oracle is not None:
            m = (~oracle & (torch.rand(oracle.shape, device=h.device) < self.oracle_ratio)).to(h.dtype)
        else:
            logits = net.mask_logits(h)
            if self.record_mask:  # measuring the learned mask (kinject.lapael.mask_rates)
                self.mask_logits[layer] = logits.detach()
            m = relaxed_bernoulli(logits, self.mask_temperature)
        m = m.unsqueeze(-1)
        return h * ((1 - m) + m * net.scale(h))

    def perturbation(self) -> Perturbation:
        """The hooks' description: MLP inputs of ``self.layers``."""
        return Perturbation("mlp_input", self.perturb, layers=self.layers)

    def check_fits(self, hidden: int | None, n_layers: int, where: str) -> None:
        """UserError (naming ``where``) unless a model of ``hidden`` size and ``n_layers`` decoder
        layers has this hidden size and these layers."""
        if hidden != self.hidden_size:
            raise UserError(f"{where}: the paraphraser was trained for hidden size {self.hidden_size} "
                            f"({self.meta.get('model', '?')}), the model has {hidden}")
        if max(self.layers) >= n_layers:
            raise UserError(f"{where}: the paraphraser perturbs layer {max(self.layers)}, "
                            f"the model has {n_layers} layers")

    def check_fits_model(self, model, where: str) -> None:
        """:meth:`check_fits` for a loaded ``model`` (its hidden size and decoder layers)."""
        self.check_fits(getattr(model.config, "hidden_size", None), len(decoder_layers(model)), where)

    def save(self, out: Path) -> None:
        """Write the directory ``out`` (must not exist) atomically."""
        from safetensors.torch import save_file

        with staged_directory(out) as tmp:
            state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in self.state_dict().items()}
            save_file(state, tmp / WEIGHTS)
            meta = {**self.meta, "format": FORMAT, "hidden_size": self.hidden_size, "layers": self.layers,
                    "mask_temperature": self.mask_temperature, "weights_sha256": file_sha256(tmp / WEIGHTS)}
            (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_paraphraser(path: Path) -> LatentParaphraser:
    """Load a paraphraser directory (float32, parameters frozen); every fault is one UserError."""
    from safetensors.torch import load_file

    meta_path, weights = path / META, path / WEIGHTS
    if not path.is_dir():
        raise UserError(f"lapael.paraphraser: {path}: no such directory (train one with kinject train-paraphraser)")
    for f in (meta_path, weights):
        if not f.is_file():
            raise UserError(f"lapael.paraphraser: {f} is missing (not a paraphraser directory)")
    meta = read_json(meta_path)
    kinds = {"format": str, "hidden_size": int, "layers": list, "mask_temperature": float, "weights_sha256": str}
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    for key, kind in kinds.items():
        if key not in meta:
            raise UserError(f"{meta_path}: missing field {key!r}")
        value = meta[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool) or (key == "layers" and not all(type(i) is int for i in value)):
            raise UserError(f"{meta_path}: field {key!r} is not a {kind.__name__}{' of ints' if kind is list else ''}")
    if meta["format"] != FORMAT:
        raise UserError(f"{meta_path}: format {meta['format']!r} is not {FORMAT!r}")
    if file_sha256(weights) != meta["weights_sha256"]:
        raise UserError(f"{weights}: checksum does not match {META} (file changed or truncated)")
    para = LatentParaphraser(int(meta["hidden_size"]), [int(i) for i in meta["layers"]],
                             float(meta["mask_temperature"]), meta)
    try:
        para.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
    except RuntimeError as exc:
        raise UserError(f"{weights}: weights do not match {META} ({str(exc).splitlines()[0]})") from None
    para.requires_grad_(False)
    return para


def resolve_paraphraser(name: str, model: str) -> Path:
    """The directory ``lapael.paraphraser`` names; ``auto`` = the one shipped for ``model``."""
    if name != "auto":
        return Path(name).expanduser()
    shipped = SHIPPED / model
    if not (shipped / META).is_file():
        known = ", ".join(sorted(p.name for p in SHIPPED.glob("*") if (p / META).is_file())) or "none"
        raise UserError(f"lapael.paraphraser=auto: no paraphraser is shipped for model {model!r} (shipped: {known}); "
                        "train one with 'kinject train-paraphraser' and set lapael.paraphraser=DIR")
    return shipped
