"""``+delia``: the model's own answers to diverse queries mixed into any training method's texts
(``ft+delia``, ``ft-para+delia``...; ``delia`` names ``ft+delia``). See
:mod:`kinject.generation.self_sample`.
"""

from __future__ import annotations

import dataclasses

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.generation.cache import generation_cache
from kinject.generation.self_sample import check_delia_config, select_self_samples
from kinject.methods import finetune  # noqa: F401  (registers ft, which delia composes)
from kinject.methods.registry import InjectRequest, register_composite, register_training_mix


def check_delia(corpus: Corpus, cfg: RunConfig) -> None:
    check_delia_config(cfg.delia)


@register_training_mix("delia", "with int(documents x delia.ratio) of the model's own answers to diverse "
                       "queries mixed into the training (DELIA)", check=check_delia,
                       reads_model=True)
def with_self_samples(req: InjectRequest) -> InjectRequest:
    samples = select_self_samples(req.cfg.model, req.source, len(req.corpus.documents), req.cfg.delia,
                                  generation_cache(req.cfg.delia.cache))
    return dataclasses.replace(req, self_samples=samples)


register_composite("delia", "ft", "delia", "fine-tuning on the documents with the model's own answers to diverse "
                   "queries mixed in (DELIA; = ft+delia)")
