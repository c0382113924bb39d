"""``+qa``: QA demonstrations about disjoint facts in any training method's mix (``ft+qa``,
``ft-para+qa``, ``lapael+qa``...). The demonstrations are chosen per run seed by
:func:`~kinject.data.demonstrations.select_demonstrations`; :func:`~kinject.methods.finetune.finetune`
trains them before (``qa.mode=before``, the default), with (``mixed``) or after (``after``) the method's own texts.
"""

from __future__ import annotations

import dataclasses

from kinject.config import RunConfig
from kinject.data.demonstrations import select_demonstrations
from kinject.data.schema import Corpus
from kinject.methods.registry import InjectRequest, register_training_mix


def check_qa(corpus: Corpus, cfg: RunConfig) -> None:
    select_demonstrations(corpus, cfg.qa, 0)  # checks qa.*, and raises when no demonstration is usable


@register_training_mix("qa", "with QA demonstrations about facts disjoint from the probes in the training "
                       "(qa.mode before | mixed | after; qa.loss answer | all; qa.header true | false: behind the "
                       "evaluation's few-shot header or bare; defaults first)", check=check_qa)
def with_demonstrations(req: InjectRequest) -> InjectRequest:
    # in a stream, clear of every update's probes, not only this update's (a run of the whole corpus is)
    chosen = select_demonstrations(req.corpus, req.cfg.qa, req.seed, clear_of=req.stream_corpus)
    return dataclasses.replace(req, demonstrations=chosen)
