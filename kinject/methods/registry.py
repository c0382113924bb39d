"""The one registry of injection methods, keyed by name (``@register_method("ft")``).

A method turns (a freshly loaded base model, the corpus, the run config, a seed) into an
:class:`Injected`: something that answers prompts (a model, optionally with a retrieval context
function), plus what the injection cost. Methods never evaluate; ``bench`` evaluates every method
the same way.

A *modifier* changes any method: ``<method>+<modifier>`` names the composition (``ft+rag``,
``ft-para+qa``), built on demand rather than registered once per method. One registered with
``@register_modifier`` wraps the method's output (retrieval: ``+rag``); one registered with
``@register_training_mix`` prepares the request before a method that trains (demonstrations:
``+qa``; self-samples: ``+delia``; general text: ``+replay``, ``+anchor``). ``register_composite``
gives a composition its own name (``rag`` = ``base+rag``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinject.errors import UserError

if TYPE_CHECKING:
    from kinject.config import RunConfig
    from kinject.data.demonstrations import Demonstrations
    from kinject.data.schema import Corpus
    from kinject.evaluation.runner import ContextFn
    from kinject.generation.replay import Replay
    from kinject.generation.self_sample import SelfSamples
    from kinject.models import LoadedModel


@dataclass
class InjectRequest:
    """The inputs of one injection: ``workdir`` is where the method may write artefacts;
    ``demonstrations``, set by ``+qa``, are trained with, before or after the method's own texts;
    ``self_samples``, set by ``+delia``, are mixed in with them; ``replay``, set by ``+replay`` and
    ``+anchor``, says what general text to mix in and with which loss. In a stream (``stream.updates``
    > 1) ``loaded`` is the model the earlier updates produced, ``history`` holds those updates'
    corpora, ``frozen`` is the base model, from which a method derives what it derives from
    "the model as loaded" (a teacher's targets, replay texts, self-samples; see :attr:`source`),
    ``stream_corpus`` is the corpus of every update, past and future: what ``+qa``'s
    demonstrations must stay clear of, as in a run of the whole corpus at once, and
    ``earlier_workdir`` is the previous update's ``workdir``, where a method finds what it left
    there (``+rag`` appends the new update's passages to the index it saved)."""

    loaded: LoadedModel
    corpus: Corpus
    cfg: RunConfig
    seed: int
    workdir: Path
    demonstrations: Demonstrations | None = None
    self_samples: SelfSamples | None = None
    replay: tuple[Replay, ...] = ()
    frozen: LoadedModel | None = None
    history: tuple[Corpus, ...] = ()
    stream_corpus: Corpus | None = None
    earlier_workdir: Path | None = None

    @property
    def seen(self) -> Corpus:
        """Every update so far as one corpus (``corpus`` itself outside a stream): what a context
        placed before the questions draws on (retrieval's index, the gold documents), and what
        ``+retrain`` trains on."""
        if not self.history:
            return self.corpus
        from kinject.stream import join_updates

        return join_updates((*self.history, self.corpus), f"{self.corpus.name}+earlier")

    @property
    def source(self) -> LoadedModel:
        """The model targets and samples come from: ``frozen`` in a stream, else ``loaded``."""
        return self.frozen or self.loaded


@dataclass
class Injected:
    """A method's output. ``train_tokens`` counts every trained token, repeats included;
    ``teacher_tokens`` / ``teacher_seconds``: what a teacher (``distill``) read and wrote, and the
    time it took when computed (cached targets count what they cost then); ``generation_tokens`` /
    ``generation_seconds`` the same for generated training data (paraphrases, self-samples)."""

    model: Any
    tokenizer: Any
    context: ContextFn | None = None
    train_tokens: int = 0
    train_seconds: float = 0.0
    train_steps: int = 0
    trainable_params: int = 0
    index_seconds: float = 0.0
    teacher_tokens: int = 0
    teacher_seconds: float = 0.0
    generation_tokens: int = 0
    generation_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


InjectFn = Callable[[InjectRequest], Injected]
WrapFn = Callable[[Injected, InjectRequest], Injected]
PrepareFn = Callable[[InjectRequest], InjectRequest]
CheckFn = Callable[["Corpus", "RunConfig"], None]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method. ``check`` raises UserError before any work if the inputs cannot serve.

    ``trains``: the method fine-tunes the model (a training mix such as ``+qa`` applies to it).
    ``reads_model``: it derives data from the model as loaded (:attr:`InjectRequest.source`: a
    teacher's targets, samples), so a stream keeps a frozen copy of the base model for it.
    A composition with an output modifier also names its ``inner`` method and the modifier's
    ``wrap``, so that ``bench`` can apply ``wrap`` to an ``inner`` result it already holds
    instead of training again.
    """

    name: str
    fn: InjectFn
    description: str
    check: CheckFn | None = None
    inner: str | None = None
    wrap: WrapFn | None = None
    trains: bool = True
    reads_model: bool = False


@dataclass(frozen=True)
class Modifier:
    """Something added to any method: ``wrap`` its result (retrieval: ``+rag``), or ``prepare``
    its request before a training method runs (demonstrations: ``+qa``); exactly one is set.
    ``places_context``: the wrap puts text before each question (``+rag``, ``+oracle``: at most one
    per method); ``needs_training``: a wrap that only makes sense on a method that trains
    (``+wise``); ``reads_model``: see :class:`MethodSpec`; ``prepares_first``: a training mix that
    replaces the request's model and corpus (``+retrain``), so it prepares before every other
    modifier, which reads them, wherever it stands in the name."""

    name: str
    description: str
    check: CheckFn | None = None
    wrap: WrapFn | None = None
    prepare: PrepareFn | None = None
    reads_model: bool = False
    places_context: bool = False
    needs_training: bool = False
    prepares_first: bool = False


_REGISTRY: dict[str, MethodSpec] = {}
_MODIFIERS: dict[str, Modifier] = {}


def register_method(name: str, description: str, check: CheckFn | None = None,
                    trains: bool = True, reads_model: bool = False) -> Callable[[InjectFn], InjectFn]:
    def deco(fn: InjectFn) -> InjectFn:
        if name in _REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        _REGISTRY[name] = MethodSpec(name, fn, description, check, trains=trains, reads_model=reads_model)
        return fn

    return deco


def _add_modifier(modifier: Modifier) -> None:
    if modifier.name in _MODIFIERS:
        raise RuntimeError(f"modifier {modifier.name!r} registered twice")
    _MODIFIERS[modifier.name] = modifier


def register_modifier(name: str, description: str, check: CheckFn | None = None, places_context: bool = True,
                      needs_training: bool = False, reads_model: bool = False) -> Callable[[WrapFn], WrapFn]:
    """Register ``wrap(injected, request) -> injected``, applied to any method's result."""
    def deco(wrap: WrapFn) -> WrapFn:
        _add_modifier(Modifier(name, description, check, wrap=wrap, reads_model=reads_model,
                               places_context=places_context, needs_training=needs_training))
        return wrap

    return deco


def register_training_mix(name: str, description: str, check: CheckFn | None = None,
                          reads_model: bool = False, prepares_first: bool = False
                          ) -> Callable[[PrepareFn], PrepareFn]:
    """Register ``prepare(request) -> request``, applied before any method that trains."""
    def deco(prepare: PrepareFn) -> PrepareFn:
        _add_modifier(Modifier(name, description, check, prepare=prepare, reads_model=reads_model,
                               prepares_first=prepares_first))
        return prepare

    return deco


def _both(first: CheckFn | None, second: CheckFn | None) -> CheckFn | None:
    if first is None or second is None:
        return first or second

    def check(corpus: Corpus, cfg: RunConfig) -> None:
        first(corpus, cfg)
        second(corpus, cfg)

    return check


def compose(inner: MethodSpec, modifier: Modifier) -> MethodSpec:
    """``inner`` with ``modifier``: the spec ``<inner>+<modifier>`` resolves to."""
    name = f"{inner.name}+{modifier.name}"
    if modifier.prepare is not None and not inner.trains:
        raise UserError(f"method {name!r}: '+{modifier.name}' changes what a method trains on, "
                        f"and {inner.name!r} trains nothing")
    if modifier.needs_training and not inner.trains:
        raise UserError(f"method {name!r}: '+{modifier.name}' changes what a method trained, "
                        f"and {inner.name!r} trains nothing")
    prepare, wrap = modifier.prepare, modifier.wrap

    def fn(req: InjectRequest) -> Injected:
        injected = inner.fn(prepare(req) if prepare else req)
        return wrap(injected, req) if wrap else injected

    return MethodSpec(name, fn, f"{inner.description}, {modifier.description}", _both(inner.check, modifier.check),
                      inner=inner.name if wrap else None, wrap=wrap, trains=inner.trains,
                      reads_model=inner.reads_model or modifier.reads_model)


def register_composite(name: str, inner: str, modifier: str, description: str) -> None:
    """Register ``inner+modifier`` under its own ``name`` (``rag`` = ``base+rag``)."""
    if name in _REGISTRY:
        raise RuntimeError(f"method {name!r} registered twice")
    spec = compose(get_method(inner), _MODIFIERS[modifier])
    _REGISTRY[name] = dataclasses.replace(spec, name=name, description=description)


def _prepare_order(name: str) -> str:
    """``name`` with its ``prepares_first`` mixes moved to the end: the outermost modifier prepares
    first, so every other one, mix or wrap, sees the request it made (``ft+retrain+qa`` composes as
    ``ft+qa+retrain``; ``ft+retrain+wise`` as ``ft+wise+retrain``, blending with the fresh base)."""
    parts = name.split("+")
    first = [p for p in parts[1:] if p in _MODIFIERS and _MODIFIERS[p].prepares_first]
    return "+".join([parts[0], *(p for p in parts[1:] if p not in first), *first])


def get_method(name: str) -> MethodSpec:
    """The spec for a registered name or a composition ``<method>+<modifier>``."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    ordered = _prepare_order(name)
    if ordered != name:
        return dataclasses.replace(get_method(ordered), name=name)
    inner, plus, mod = name.rpartition("+")
    if plus and mod in _MODIFIERS and inner:
        if mod in inner.split("+"):
            raise UserError(f"method {name!r}: modifier '+{mod}' applied twice")
        context = [m for m in (*inner.split("+"), mod) if m in _MODIFIERS and _MODIFIERS[m].places_context]
        if len(context) > 1:
            raise UserError(f"method {name!r}: '+{context[0]}' and '+{context[1]}' each place a context before "
                            "the question; use one")
        return compose(get_method(inner), _MODIFIERS[mod])
    known = ", ".join(sorted(_REGISTRY))
    mods = ", ".join(f"+{m}" for m in sorted(_MODIFIERS))
    raise UserError(f"unknown method {name!r} (known: {known}; modifiers, after any method: {mods or 'none'})")


def method_specs() -> list[MethodSpec]:
    """Registered methods, in registration order."""
    return list(_REGISTRY.values())


def modifier_specs() -> list[Modifier]:
    """Registered modifiers, in registration order."""
    return list(_MODIFIERS.values())


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
