"""Weight-space interpolation of an injected model with its base (``+wise``, WiSE-FT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from kinject.checks import Check, fraction


@dataclass
class WiseConfig:
    """``alpha``: the injected model's share of every weight (the base model's is 1 - alpha)."""

    alpha: float = 0.5

    CHECKS: ClassVar[dict[str, Check]] = {"alpha": fraction}


def interpolate(model: torch.nn.Module, base: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """``model``'s floating-point parameters and buffers set, in place, to ``alpha x model + (1 -
    alpha) x base`` (matched by name; both of one architecture). A tensor shared under several
    names (tied input and output embeddings) is blended once."""
    start = base.state_dict()
    blended: set[int] = set()
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point() and name in start and value.data_ptr() not in blended:
                blended.add(value.data_ptr())
                value.mul_(alpha).add_(start[name].to(value.device, value.dtype), alpha=1 - alpha)
    return model
