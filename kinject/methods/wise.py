"""``+wise``: the injected model's weights interpolated with the base model's (WiSE-FT).

Wortsman et al. 2022 (arXiv 2109.01903) showed that averaging a fine-tuned model's weights with
those it started from keeps much of what fine-tuning gained while recovering what it cost the
original model. Here the trade is injected facts against general knowledge: ``<m>+wise`` sets
every weight to ``wise.alpha x injected + (1 - wise.alpha) x base`` (alpha 1: the injected model;
0: the base model), after folding a LoRA adapter in. In a bench it reuses ``m``'s result from
the same seed, so each alpha is one more point on the accuracy-retention frontier at no training
cost; in a stream the base is the frozen base model.
"""

from __future__ import annotations

import dataclasses

from kinject.checks import check_section
from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.methods.finetune import merged
from kinject.methods.registry import Injected, InjectRequest, register_modifier
from kinject.models import load_model
from kinject.training.interpolate import interpolate


def check_wise(corpus: Corpus, cfg: RunConfig) -> None:
    check_section(cfg.wise, "wise")


@register_modifier("wise", "with its weights interpolated with the base model's, wise.alpha x injected + "
                   "(1 - wise.alpha) x base (WiSE-FT)", check=check_wise, places_context=False, needs_training=True,
                   reads_model=True)
def interpolated(injected: Injected, req: InjectRequest) -> Injected:
    """The interpolation written into a model this composition owns: in a stream, the update's own
    model (the frozen base is shared); else the request's fresh base model (a reused result stays
    as ``m`` left it), or a fresh load when ``m`` trained that one in place."""
    model, alpha = merged(injected.model), req.cfg.wise.alpha
    if req.frozen is not None:
        out = interpolate(model, req.frozen.model, alpha)
    else:
        base = req.loaded.model
        if base is model:
            base = load_model(req.cfg.model, req.cfg.model_dtype).model
        out = interpolate(base, model, 1 - alpha)
    return dataclasses.replace(injected, model=out, info={**injected.info, "wise": {"alpha": alpha}})
