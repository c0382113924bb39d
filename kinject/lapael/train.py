"""Training a latent paraphraser (``kinject train-paraphraser``): the LLM frozen, the module trained.

Each batch holds ``batch_size`` sentences (whole, as LaPael's code, or cut at the answer position:
``lapael.sentence``), each copied ``copies`` times and every copy perturbed with the gold mask
(answer, subject and entity tokens kept). At the answer position, the mean and std over the copies
of each compared hidden-state output are pulled toward the paraphrase target by the symmetric KL
between diagonal Gaussians (:func:`symmetric_gaussian_kl`); the mask logits are trained apart
(:func:`mask_loss`, ``lapael.mask_loss``) so that kept tokens score low and about ``mask_ratio``
of the tokens are perturbed at injection time. The two losses reach disjoint parameters (the mask heads see the
hidden states detached), and each group's gradient is clipped to ``max_grad_norm`` on its own, so
the large KL gradients do not starve the mask heads.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from kinject.checks import check_section
from kinject.errors import UserError
from kinject.hardware import compute_device, place
from kinject.lapael.config import LapaelConfig
from kinject.lapael.paraphraser import LatentParaphraser
from kinject.lapael.targets import TrainingSentence, answer_states
from kinject.training.perturb import decoder_layers, perturbed
from kinject.training.trainer import layer_slice, pad_right


def symmetric_gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor,
                          std_q: torch.Tensor) -> torch.Tensor:
    """0.5 [KL(p||q) + KL(q||p)] per element for diagonal Gaussians p, q (the log terms cancel)."""
    var_p, var_q, sq = std_p**2, std_q**2, (mean_p - mean_q) ** 2
    return 0.5 * ((var_p + sq) / (2 * var_q) + (var_q + sq) / (2 * var_p) - 1)


def distribution_loss(states: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor,
                      std_floor: float) -> torch.Tensor:
    """The KL loss of perturbed ``states`` (K, B, copies, d) against targets (K, B, d): the copies'
    mean and std (std clamped >= ``std_floor``; a target std below the floor is replaced by the
    detached predicted one), symmetric KL averaged over dims and batch, summed over the K outputs."""
    mean = states.mean(2)
    std = states.std(2).clamp(min=std_floor)
    target_std = torch.where(target_std < std_floor, std.detach(), target_std)
    return symmetric_gaussian_kl(mean, std, target_mean, target_std).mean(dim=(1, 2)).sum()


def mask_loss(logits: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor, ratio: float,
              form: str = "row") -> torch.Tensor:
    """Mask loss for logits (rows, T): the mean perturbation probability on kept tokens, plus a
    term for how many tokens are perturbed. ``row`` (LaPael's code): per row, the distance in
    tokens of the expected number perturbed from ``ratio`` x the row's valid tokens, averaged over
    rows. ``row_free``: the same over the row's tokens that are not kept (so any ratio can be met
    with the kept tokens at 0). ``pooled``: the distance of the mean probability on the other tokens
    from ``ratio``."""
    p = torch.sigmoid(logits)
    kept, free = keep & valid, ~keep & valid
    entity = p[kept].mean() if kept.any() else p.new_zeros(())
    if form in ("row", "row_free"):
        counted = valid if form == "row" else free
        count = ((p * counted).sum(-1) - counted.sum(-1) * ratio).abs().mean()
    else:
        count = (p[free].mean() - ratio).abs() if free.any() else p.new_zeros(())
    return entity + count


def default_kl_layers(n_layers: int) -> list[int]:
    """The upper half of the hidden-state outputs: n/2 .. n (of 0..n, 0 = embeddings)."""
    return list(range(n_layers // 2, n_layers + 1))


def resolve_layers(model, cfg: LapaelConfig) -> tuple[list[int], list[int]]:
    """(perturbed decoder layers, compared hidden-state outputs) for ``model``."""
    n = len(decoder_layers(model))
    layers = list(layer_slice(cfg.layers, n, "lapael.layers"))
    kl = default_kl_layers(n) if cfg.kl_layers is None else list(layer_slice(cfg.kl_layers, n + 1, "lapael.kl_layers"))
    if not layers:
        raise UserError(f"lapael.layers: {cfg.layers!r} selects no decoder layer")
    if not kl:
        raise UserError(f"lapael.kl_layers: {cfg.kl_layers!r} selects no hidden-state output")
    return layers, kl


def check_train_config(cfg: LapaelConfig) -> None:
    """UserError naming the first key out of range (``LapaelConfig.CHECKS``)."""
    check_section(cfg, "lapael")


@dataclass
class EpochLog:
    """Mean losses of one epoch: ``kl`` (distribution loss) and ``mask``."""

    epoch: int
    kl: float
    mask: float
    seconds: float


def mask_plateaued(curve: Sequence[float], patience: int) -> bool:
    """Whether the last ``patience`` epochs' mask losses all stayed above 99% of the best before them."""
    if len(curve) <= patience:
        return False
    best = min(curve[:-patience])
    return min(curve[-patience:]) > 0.99 * best


@dataclass
class ParaphraserTraining:
    """The trained module and its loss curve (one row per epoch; ``steps`` = per-step total loss);
    ``stopped``: why training ended before ``lapael.epochs`` (None: it ran them all)."""

    paraphraser: LatentParaphraser
    epochs: list[EpochLog] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None


def train_paraphraser(model, pad_id: int, sentences: Sequence[TrainingSentence], cfg: LapaelConfig,
                      layers: list[int], kl_layers: list[int], seed: int,
                      log: Callable[[str], None] | None = None) -> ParaphraserTraining:
    """Train a fresh paraphraser for the frozen ``model`` on ``sentences`` (targets attached)."""
    if not sentences:
        raise UserError("no usable training sentences (each needs its answer and >= 2 paraphrases containing it)")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.requires_grad_(False)
    model.eval()
    device = compute_device()
    para = place(LatentParaphraser(model.config.hidden_size, layers, cfg.mask_temperature))
    groups = [[p for name, p in para.named_parameters() if ".mask." not in name],
              [p for name, p in para.named_parameters() if ".mask." in name]]
    mask_lr = cfg.lr if cfg.mask_lr is None else cfg.mask_lr
    opt = torch.optim.AdamW([{"params": groups[0], "lr": cfg.lr}, {"params": groups[1], "lr": mask_lr}],
                            weight_decay=0.0)
    perturbation = para.perturbation()
    result = ParaphraserTraining(para)
    order = list(range(len(sentences)))
    start = time.perf_counter()
    with perturbed(model, perturbation):
        for epoch in range(cfg.epochs):
            rng.shuffle(order)
            t0, kl_sum, mask_sum, n = time.perf_counter(), 0.0, 0.0, 0
            for b in range(0, len(order), cfg.batch_size):
                batch = [sentences[i] for i in order[b: b + cfg.batch_size]]
                rows = [s.tokens for s in batch for _ in range(cfg.copies)]
                keep, valid = pad_right([[int(k) for k in r.keep] for r in rows], 0)
                keep = keep.bool() & valid.bool()
                perturbation.state = {"rows": torch.ones(len(rows), dtype=torch.bool, device=device),
                                      "keep": keep.to(device)}
                states = answer_states(model, [r.ids for r in rows], pad_id, kl_layers, [r.position for r in rows])
                states = states.view(len(kl_layers), len(batch), cfg.copies, -1)
                target_mean = torch.stack([s.target_mean for s in batch], 1).to(device)
                target_std = torch.stack([s.target_std for s in batch], 1).to(device)
                kl = distribution_loss(states, target_mean, target_std, cfg.std_floor)
                masks = sum(mask_loss(para.mask_logits[i], keep.to(device), valid.bool().to(device), cfg.mask_ratio,
                                      cfg.mask_loss) for i in layers)
                if cfg.mask_loss != "pooled":  # LaPael averages its layers' mask losses
                    masks = masks / len(layers)
                loss = kl + cfg.mask_weight * masks
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for group in groups:  # the two losses train disjoint parameters: clip each on its own
                    torch.nn.utils.clip_grad_norm_(group, cfg.max_grad_norm)
                opt.step()
                result.steps.append(loss.item())
                kl_sum, mask_sum, n = kl_sum + kl.item(), mask_sum + masks.item(), n + 1
            result.epochs.append(EpochLog(epoch + 1, kl_sum / n, mask_sum / n, time.perf_counter() - t0))
            if log:
                e = result.epochs[-1]
                log(f"epoch {e.epoch}/{cfg.epochs}: kl {e.kl:.4f}  mask {e.mask:.4f}  ({e.seconds:.0f} s)")
            if cfg.patience is not None and mask_plateaued([e.mask for e in result.epochs], cfg.patience):
                result.stopped = f"the mask loss fell by < 1% in {cfg.patience} epochs"
                break
    para.mask_logits.clear()
    para.requires_grad_(False)
    result.seconds = time.perf_counter() - start
    return result


def fit_paraphraser(loaded, name: str, facts, paraphrases: dict[str, list[str]], cfg: LapaelConfig, seed: int,
                    command: str, log: Callable[[str], None] | None = None) -> ParaphraserTraining:
    """Targets (cached) + training for ``loaded`` on one dataset; the result's ``meta`` records the
    model, the data (name, hash, sentence counts), the settings, the seed, ``command`` and the curve."""
    from kinject import __version__
    from kinject.artifacts import directory_fingerprint
    from kinject.lapael.targets import build_training_sentences, data_hash

    check_train_config(cfg)
    facts = list(facts)[: cfg.limit] if cfg.limit is not None else list(facts)
    layers, kl_layers = resolve_layers(loaded.model, cfg)
    fingerprint = directory_fingerprint(loaded.path)
    start = time.perf_counter()
    sentences = build_training_sentences(loaded.model, loaded.tokenizer, facts, paraphrases, kl_layers,
                                         cfg.paraphrases, cfg.max_length, fingerprint, cfg.sentence == "whole")
    target_seconds = time.perf_counter() - start
    if log:
        log(f"{name}: {len(sentences)} of {len(facts)} sentences usable; targets over hidden states {kl_layers[0]}.."
            f"{kl_layers[-1]} ready in {target_seconds:.0f} s")
    training = train_paraphraser(loaded.model, loaded.tokenizer.pad_token_id, sentences, cfg, layers, kl_layers,
                                 seed, log)
    training.paraphraser.meta = {
        "model": loaded.source, "model_fingerprint": fingerprint, "n_layers": len(decoder_layers(loaded.model)),
        "kl_layers": kl_layers,
        "training": {"command": command, "seed": seed, "data": name, "data_hash": data_hash(facts, paraphrases),
                     "sentences": len(sentences), "skipped": len(facts) - len(sentences),
                     "config": dataclasses.asdict(cfg), "target_seconds": round(target_seconds, 1),
                     "train_seconds": round(training.seconds, 1), "kinject_version": __version__,
                     "epochs": [dataclasses.asdict(e) for e in training.epochs], "stopped": training.stopped,
                     "step_losses": training.steps},
        "perturb_rates": training_sentence_rates(loaded, training.paraphraser, facts, cfg),
    }
    return training


def training_sentence_rates(loaded, para: LatentParaphraser, facts, cfg: LapaelConfig) -> dict:
    """:func:`~kinject.lapael.mask_rates.perturb_rates` of the learned mask on the whole training
    sentences (answer, subject/entities, other), as it acts at injection."""
    from kinject.lapael.mask_rates import perturb_rates
    from kinject.lapael.targets import fact_entities, tokenize_sentence

    tokenized = (tokenize_sentence(loaded.tokenizer, f.text, f.answer, fact_entities(f), cfg.max_length) for f in facts)
    rows = [t for t in tokenized if t is not None]
    rates = perturb_rates(loaded.model, loaded.tokenizer.pad_token_id, para, [(t.ids, t.kinds) for t in rows])
    return {"on": f"its {len(rows)} training sentences, whole", **rates}
