"""``+retrain``: in a stream of updates, the baseline of retraining from the base model on every
update so far at each update (``ft+retrain``, ``ft-para+retrain``); its cost grows with the
stream. It prepares before any other modifier, wherever it stands in the name
(``ft+retrain+qa``'s demonstrations are counted on every update so far, ``ft+retrain+wise`` blends
with the base model). See :mod:`kinject.stream`.
"""

from __future__ import annotations

import dataclasses

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.methods.registry import InjectRequest, register_training_mix
from kinject.models import load_model


def check_retrain(corpus: Corpus, cfg: RunConfig) -> None:
    if cfg.stream.updates < 2:
        raise UserError("+retrain: retrains at each update of a stream; set stream.updates to 2 or more")


@register_training_mix("retrain", "in a stream (stream.updates > 1), retrained from the base model on every update "
                       "so far at each update: the baseline a sequential method is compared with",
                       check=check_retrain, prepares_first=True)
def from_the_base(req: InjectRequest) -> InjectRequest:
    if not req.history:
        return req
    return dataclasses.replace(req, loaded=load_model(req.cfg.model, req.cfg.model_dtype), corpus=req.seen, history=())
