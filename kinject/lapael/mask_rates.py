"""How often a paraphraser's learned mask perturbs each kind of token (answer, entity, other).

A latent paraphraser is meant to leave the tokens that carry a fact (its answer, its subject and
other named entities) alone and to perturb the rest. :func:`perturb_rates` runs the frozen model
with the paraphraser attached and its learned mask on, as at injection (each perturbed layer sees
the states the earlier layers' perturbations produced), and averages the mask's perturbation
probability, sigmoid(logit), over the tokens of each kind. Special tokens are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kinject.hardware import compute_device
from kinject.lapael.paraphraser import LatentParaphraser
from kinject.lapael.targets import TOKEN_KINDS
from kinject.training.perturb import perturbed
from kinject.training.trainer import pad_right


def perturb_rates(model, pad_id: int, para: LatentParaphraser, rows: Sequence[tuple[list[int], list[str]]],
                  batch_size: int = 32) -> dict:
    """Expected share of tokens perturbed, per kind, for token rows ``(ids, kinds)``.

    Returns ``{"by_layer": {layer: {kind: rate}}, "mean": {kind: rate over layers}, "tokens":
    {kind: count}}``; a kind with no token has rate None. The model's train/eval mode is kept.
    """
    device = compute_device()
    sums = {i: dict.fromkeys(TOKEN_KINDS, 0.0) for i in para.layers}
    counts = dict.fromkeys(TOKEN_KINDS, 0)
    state = para.perturbation()
    para.record_mask = True
    with torch.no_grad(), perturbed(model, state):
        for b in range(0, len(rows), batch_size):
            batch = rows[b: b + batch_size]
            ids, valid = pad_right([r[0] for r in batch], pad_id)
            state.state = {"rows": torch.ones(len(batch), dtype=torch.bool, device=device)}
            model.base_model(input_ids=ids.to(device), attention_mask=valid.to(device))
            for kind in TOKEN_KINDS:
                where = torch.tensor([[k == kind for k in r[1]] + [False] * (ids.shape[1] - len(r[1])) for r in batch])
                counts[kind] += int(where.sum())
                for i in para.layers:
                    sums[i][kind] += float(torch.sigmoid(para.mask_logits[i].float()).cpu()[where].sum())
    para.record_mask = False
    para.mask_logits.clear()
    by_layer = {i: {k: (sums[i][k] / counts[k] if counts[k] else None) for k in TOKEN_KINDS} for i in para.layers}
    mean = {k: (sum(by_layer[i][k] for i in para.layers) / len(para.layers) if counts[k] else None)
            for k in TOKEN_KINDS}
    return {"by_layer": by_layer, "mean": mean, "tokens": counts}


def rates_line(rates: dict) -> str:
    """One line: ``perturbed: answer .12, entity .08, other .61 (mean over layers 0..4; N tokens)``."""
    mean, layers = rates["mean"], list(rates["by_layer"])
    parts = [f"{k} {mean[k]:.2f}" if mean[k] is not None else f"{k} -" for k in TOKEN_KINDS]
    tokens = ", ".join(f"{rates['tokens'][k]} {k}" for k in TOKEN_KINDS)
    return f"perturbed: {', '.join(parts)} (mean over layers {layers[0]}..{layers[-1]}; tokens: {tokens})"
