"""``+replay`` and ``+anchor``: general text mixed into any training method to keep what the model
knew (``ft+replay``, ``ft-para+anchor``, ``lapael+replay+anchor``...). See
:mod:`kinject.generation.replay`.
"""

from __future__ import annotations

import dataclasses

from kinject.checks import check_section
from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.generation.replay import ANCHOR_KLS, Replay, check_replay_config
from kinject.methods.registry import InjectRequest, register_training_mix


def check_replay(corpus: Corpus, cfg: RunConfig) -> None:
    check_replay_config(cfg.replay)
    if cfg.train.packing:
        raise UserError("train.packing: +replay and +anchor's rows carry the frozen model's distributions per token "
                        "of a padded batch; set train.packing=false")


@register_training_mix("replay", "with general text mixed into the training, replay.ratio texts per training text "
                       "(replay.source: self, the model's own continuations of everyday openings, or a JSONL "
                       "of {text}), trained with the next-token loss", check=check_replay,
                       reads_model=True)
def with_replay(req: InjectRequest) -> InjectRequest:
    plan = Replay(req.cfg.replay, loss="ce", top_k=req.cfg.anchor.top_k)
    return dataclasses.replace(req, replay=(plan, *req.replay))  # outer modifiers prepare first


def check_anchor(corpus: Corpus, cfg: RunConfig) -> None:
    check_replay(corpus, cfg)
    check_section(cfg.anchor, "anchor")


@register_training_mix("anchor", "with a KL penalty toward the frozen model's next-token distributions on the "
                       "replay texts (replay.*), weight anchor.weight (anchor.form: pooled in the batch's mean "
                       "| penalty, a mean of its own added; anchor.kl: tail, exact with the rest of the "
                       "vocabulary as one outcome | topk, renormalised)", check=check_anchor,
                       reads_model=True)
def with_anchor(req: InjectRequest) -> InjectRequest:
    anchor = req.cfg.anchor
    plan = Replay(req.cfg.replay, loss=ANCHOR_KLS[anchor.kl], weight=anchor.weight, top_k=anchor.top_k,
                  average="penalty" if anchor.form == "penalty" else "token")
    return dataclasses.replace(req, replay=(plan, *req.replay))  # outer modifiers prepare first
