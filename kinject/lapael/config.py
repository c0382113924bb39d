"""The ``lapael:`` config section: which paraphraser injection uses, and how one is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kinject.checks import Check, at_least, fraction, layer_spec, one_of, positive


@dataclass
class LapaelConfig:
    """``paraphraser``: a directory from ``kinject train-paraphraser``, or ``auto`` (the one shipped
    for the default model). The other keys are read by ``kinject train-paraphraser``:

    - ``layers``: decoder layers whose MLP input is perturbed (":5" = layers 0..4);
    - ``kl_layers``: hidden-state outputs the loss compares (indices of ``output_hidden_states``,
      0 = embeddings; ``None`` = the upper half, layers n/2..n);
    - ``copies``: perturbed copies per sentence; ``epochs``, ``batch_size`` (sentences), ``lr``
      (AdamW, constant), ``max_grad_norm``; ``mask_lr``: the mask heads' own rate (None: ``lr``;
      the two losses train disjoint parameters, so it leaves the noise networks' training alone);
    - ``std_floor``: predicted std is clamped to at least this, and target std below it is replaced
      by the (detached) predicted std;
    - ``mask_temperature``: of the relaxed-Bernoulli token mask; ``mask_ratio``: the share of
      tokens the learned mask should perturb; ``mask_weight``: weight of the mask loss;
      ``mask_loss``: ``row`` (LaPael's code: per sentence, the expected count of perturbed tokens
      against ``mask_ratio`` x its tokens), ``row_free`` (the same count over the tokens not kept,
      so that the ratio can be met whatever share of a sentence is kept) or ``pooled`` (kinject's
      first form: the batch's mean probability on the non-kept tokens against ``mask_ratio``);
    - ``sentence``: ``whole`` (LaPael's code: every token of a training sentence, so the answer's
      own tokens meet the mask loss) or ``to_answer`` (cut at the answer position, kinject's first form);
    - ``patience``: stop once the epoch's mask loss has not fallen 1% below its best for this many
      epochs (None: run all ``epochs``);
    - ``paraphrases``: at most this many paraphrases per sentence form its target;
    - ``max_length``: sentences whose answer starts after this many tokens are skipped;
    - ``limit``: train on the first N sentences only (None = all);
    - ``mask`` (injection): ``learned`` (the paraphraser's own token mask) or ``oracle`` (the
      corpus's known subject and answer spans kept, every other token perturbed with probability
      ``mask_ratio``): an ablation that tells a weak mask from a method that does not help.
    """

    paraphraser: str = "auto"
    layers: str = ":5"
    kl_layers: str | None = None
    copies: int = 4
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    mask_lr: float | None = None
    max_grad_norm: float = 1.0
    std_floor: float = 0.1
    mask_temperature: float = 0.1
    mask_ratio: float = 0.5
    mask_weight: float = 1.0
    mask_loss: str = "row"
    sentence: str = "whole"
    patience: int | None = None
    paraphrases: int = 10
    max_length: int = 192
    limit: int | None = None
    mask: str = "learned"

    CHECKS: ClassVar[dict[str, Check]] = {
        "layers": layer_spec, "kl_layers": layer_spec, "copies": at_least(2), "epochs": at_least(1),
        "batch_size": at_least(1), "lr": positive, "mask_lr": positive,
        "max_grad_norm": positive, "std_floor": positive,
        "mask_temperature": positive, "mask_ratio": fraction, "mask_weight": at_least(0),
        "mask_loss": one_of("row", "row_free", "pooled"), "sentence": one_of("whole", "to_answer"),
        "patience": at_least(1), "paraphrases": at_least(2),
        "max_length": at_least(2), "limit": at_least(1), "mask": one_of("learned", "oracle")}
