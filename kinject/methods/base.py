"""``base``: nothing injected; the reference every other method is measured against."""

from __future__ import annotations

from kinject.methods.registry import Injected, InjectRequest, register_method


@register_method("base", "the base model, nothing injected", trains=False)
def base(req: InjectRequest) -> Injected:
    return Injected(req.loaded.model, req.loaded.tokenizer)
