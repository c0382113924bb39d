"""Injection methods. Importing this package registers every built-in method."""

from kinject.methods import (  # noqa: F401  (registration side effects)
    base,
    delia_mix,
    distill,
    finetune,
    lapael,
    noise,
    oracle,
    qa_mix,
    rag,
    replay_mix,
    retrain_mix,
    wise,
)
from kinject.methods.registry import (
    Injected,
    InjectRequest,
    get_method,
    method_names,
    register_method,
    resolve_methods,
)

__all__ = ["InjectRequest", "Injected", "get_method", "method_names", "register_method", "resolve_methods"]
