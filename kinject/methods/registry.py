"""The one registry of injection methods, keyed by name (``@register_method("ft")``).

A method turns (a freshly loaded base model, the corpus, the run config, a seed) into an
:class:`Injected`: something that answers prompts (a model, and later a retriever), plus what
the injection cost. Methods never evaluate; ``bench`` evaluates every method the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinject.errors import UserError

if TYPE_CHECKING:
    from kinject.config import RunConfig
    from kinject.data.schema import Corpus
    from kinject.evaluation.runner import ContextFn
    from kinject.models import LoadedModel


@dataclass
class InjectRequest:
    """The inputs of one injection: ``workdir`` is where the method may write artefacts."""

    loaded: LoadedModel
    corpus: Corpus
    cfg: RunConfig
    seed: int
    workdir: Path


@dataclass
class Injected:
    """A method's output. ``train_tokens`` counts every trained token, repeats included."""

    model: Any
    tokenizer: Any
    context: ContextFn | None = None
    train_tokens: int = 0
    train_seconds: float = 0.0
    train_steps: int = 0
    trainable_params: int = 0
    info: dict[str, Any] = field(default_factory=dict)


InjectFn = Callable[[InjectRequest], Injected]
CheckFn = Callable[["Corpus", "RunConfig"], None]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method. ``check`` raises UserError before any work if the inputs cannot serve."""

    name: str
    fn: InjectFn
    description: str
    check: CheckFn | None = None


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, description: str, check: CheckFn | None = None) -> Callable[[InjectFn], InjectFn]:
    def deco(fn: InjectFn) -> InjectFn:
        if name in _REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        _REGISTRY[name] = MethodSpec(name, fn, description, check)
        return fn

    return deco


def get_method(name: str) -> MethodSpec:
    if name not in _REGISTRY:
        raise UserError(f"unknown method {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def method_specs() -> list[MethodSpec]:
    """Registered methods, in registration order."""
    return list(_REGISTRY.values())


def method_names() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def resolve_methods(names: list[str]) -> list[str]:
    """Expand ``all`` and check every name; duplicates are dropped, order kept."""
    out: list[str] = []
    for name in names:
        for n in method_names() if name == "all" else [name]:
            get_method(n)
            if n not in out:
                out.append(n)
    if not out:
        raise UserError("no methods given")
    return out
