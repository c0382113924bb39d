"""Typed run configuration: dataclass defaults, then a YAML file, then ``key=value`` overrides.

Keys are dotted paths into :class:`RunConfig` (``train.lr=3e-4``, ``data.builtin.test_people=8``).
Values are parsed as YAML scalars/lists (``methods=[base,ft]``, ``data.limit=100``). An unknown
key, a value of the wrong type, or one out of its range or set (each section's ``CHECKS``,
:mod:`kinject.checks`) is a :class:`~kinject.errors.UserError` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kinject.checks import Check, at_least, check_section, non_empty, one_of, seed_range
from kinject.data.builtin.world import BuiltinConfig
from kinject.data.demonstrations import QAConfig
from kinject.data.jsonl import read_text
from kinject.data.loaders import SOURCES
from kinject.distill.config import DistillConfig
from kinject.errors import UserError
from kinject.evaluation.runner import EvalConfig
from kinject.generation.generators import GenerationConfig
from kinject.generation.paraphrase import ParaConfig
from kinject.generation.questions import QuestionConfig
from kinject.generation.replay import AnchorConfig, ReplayConfig
from kinject.generation.self_sample import DeliaConfig
from kinject.hardware import DTYPES
from kinject.lapael.config import LapaelConfig
from kinject.models import DEFAULT_MODEL
from kinject.report.frontier import ReportConfig
from kinject.retrieval.retriever import RetrievalConfig
from kinject.stream import StreamConfig
from kinject.training.interpolate import WiseConfig
from kinject.training.perturb import NoiseConfig
from kinject.training.trainer import TrainConfig

DEFAULT_SUITE = ["base", "ft", "ft-para", "rag", "oracle"]


@dataclass
class DataConfig:
    """Which corpus to inject and probe.

    source: ``builtin`` (the fictional world), ``lapael-squad`` (a directory in the LaPael
    layout; ``split`` picks test or train), ``textdir`` (a directory of .txt/.md files plus a
    ``probes`` JSONL) or ``jsonl`` (a documents JSONL plus a ``probes`` JSONL).
    ``limit``: keep the first N documents (facts) and only their probes.
    """

    source: str = "builtin"
    path: str | None = None
    probes: str | None = None
    split: str = "test"
    limit: int | None = None
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)

    CHECKS: ClassVar[dict[str, Check]] = {"source": one_of(*SOURCES), "split": one_of("test", "train"),
                                          "limit": at_least(1)}


@dataclass
class RunConfig:
    """Everything one ``kinject bench`` run needs. ``seeds`` are run seeds (world + training).

    ``model_dtype``: the dtype the model is loaded, evaluated and saved in (``auto``: bfloat16
    where the hardware runs it natively, else float32); training keeps fp32 master weights unless
    ``train.master_weights=model``.
    """

    model: str = DEFAULT_MODEL
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_SUITE))
    seeds: list[int] = field(default_factory=lambda: [0])
    model_dtype: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    para: ParaConfig = field(default_factory=ParaConfig)
    generate: GenerationConfig = field(default_factory=GenerationConfig)
    questions: QuestionConfig = field(default_factory=QuestionConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    lapael: LapaelConfig = field(default_factory=LapaelConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    delia: DeliaConfig = field(default_factory=DeliaConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    wise: WiseConfig = field(default_factory=WiseConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    save_models: bool = False
    save_merged: bool = False

    CHECKS: ClassVar[dict[str, Check]] = {
        "methods": non_empty, "seeds": lambda v: non_empty(v) or next(filter(None, map(seed_range, v)), None),
        "model_dtype": one_of("auto", *DTYPES)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """Return ``value`` coerced to ``hint`` (int -> float allowed) or raise UserError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(hint):
            try:
                return _check_type(value, arm, key)
            except UserError as exc:
                errors.append(exc)
        raise errors[-1]
    if hint is type(None):
        if value is None:
            return None
    elif origin is dict:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
    elif origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [_check_type(v, item, key) for v in value]
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif hint is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    elif hint in (int, bool, str) and type(value) is hint:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise UserError(f"config key {key!r}: expected {name}, got {value!r}")


RENAMED_KEYS = {"retrieval.ivf_threshold": "retrieval.ann_threshold"}
"""Keys that were renamed: the old name is still read, as the new key (run directories written
before the rename resume)."""


def _set(obj: Any, path: list[str], value: Any, where: str) -> None:
    key = ".".join(path)
    if key in RENAMED_KEYS:
        key = RENAMED_KEYS[key]
        path = key.split(".")
    target = obj
    for i, part in enumerate(path):
        fields = {f.name: f for f in dataclasses.fields(target)}
        if part not in fields:
            raise UserError(f"{where}unknown config key {key!r}")
        hints = typing.get_type_hints(type(target))
        if i == len(path) - 1:
            current = getattr(target, part)
            if dataclasses.is_dataclass(current):
                if not isinstance(value, dict):
                    raise UserError(f"{where}config key {key!r} is a section; give its keys")
                for sub, v in value.items():
                    _set(obj, [*path, str(sub)], v, where)
                return
            if isinstance(value, _Override):
                try:
                    checked = _check_type(value.parsed, hints[part], f"{where}{key}")
                except UserError:  # e.g. layers=5: parses as a YAML mapping; the text is meant
                    checked = _check_type(value.raw, hints[part], f"{where}{key}")
            else:
                checked = _check_type(value, hints[part], f"{where}{key}")
            setattr(target, part, checked)
            return
        target = getattr(target, part)
        if isinstance(target, dict):  # a free mapping (train.args): its keys are checked where it is used
            rest = ".".join(path[i + 1:])
            target[rest] = value.parsed if isinstance(value, _Override) else value
            return
        if not dataclasses.is_dataclass(target):
            raise UserError(f"{where}unknown config key {key!r}")


def apply_mapping(cfg: RunConfig, mapping: dict[str, Any], where: str = "") -> None:
    for key, value in mapping.items():
        _set(cfg, str(key).split("."), value, where)


@dataclass(frozen=True)
class _Override:
    """A command-line value: its YAML reading, and the raw text for string-typed keys."""

    parsed: Any
    raw: str


def split_override_key(text: str) -> str:
    """The key of a ``key=value`` override (the text before ``=``, stripped)."""
    return text.split("=", 1)[0].strip()


def parse_override(text: str) -> tuple[str, _Override]:
    """``key=value`` -> (key, the value as YAML and as raw text)."""
    if "=" not in text:
        raise UserError(f"override {text!r} is not key=value")
    key, raw = split_override_key(text), text.split("=", 1)[1]
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, _Override(value, raw)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; UserError naming the file (and line) when it is missing,
    not UTF-8, malformed or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        mapping = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: malformed YAML") from None
    if not isinstance(mapping, dict):
        raise UserError(f"{path}: the config must be a mapping of keys")
    return mapping


def dotted_keys(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys a config file's mapping sets (``{"para": {"k": 3}}`` -> ``["para.k"]``)."""
    keys = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        keys += dotted_keys(value, f"{dotted}.") if isinstance(value, dict) else [dotted]
    return keys


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``key=value`` overrides."""
    cfg = RunConfig()
    if path is not None:
        apply_mapping(cfg, read_config_file(path), where=f"{path}: ")
    for text in overrides or []:
        key, value = parse_override(text)
        apply_mapping(cfg, {key: value})
    check_section(cfg, "")
    return cfg


# Keys added with a default that does what no earlier kinject did: the value that does what it did,
# and the modifier whose rows it changes. A recorded config without the key that runs such a row
# reads it so, and resumes only as it ran.
EARLIER_BEHAVIOUR = {("anchor", "kl"): ("topk", "anchor")}


def saved_config(mapping: dict[str, Any]) -> RunConfig | None:
    """A config a run directory recorded, with the keys kinject gained since it was written at
    their defaults (a new key's default keeps the old behaviour) or, for those in
    :data:`EARLIER_BEHAVIOUR` where it runs their modifier, at the value that does; or None if it
    no longer loads (a key since removed): then it is another config."""
    cfg = RunConfig()
    mapping = {**mapping}
    methods = mapping.get("methods") if isinstance(mapping.get("methods"), list) else []
    for (section, key), (value, modifier) in EARLIER_BEHAVIOUR.items():
        uses = any(modifier in str(m).split("+")[1:] for m in methods)
        if uses and isinstance(mapping.get(section), dict) and key not in mapping[section]:
            mapping[section] = {**mapping[section], key: value}
    try:
        apply_mapping(cfg, mapping)
        check_section(cfg, "")
    except UserError:
        return None
    return cfg


def _identity(config: Any, top: bool = True) -> Any:
    """A config mapping as a run's identity: the display settings (``progress`` anywhere, the
    ``report`` section) left out."""
    if isinstance(config, dict):
        return {k: _identity(v, False) for k, v in config.items() if k != "progress" and not (top and k == "report")}
    return config


def same_config(saved: RunConfig | None, cfg: RunConfig) -> bool:
    """Whether a recorded config (``saved_config``'s reading) is ``cfg`` for resuming: equal but
    for the display settings."""
    return saved is not None and _identity(saved.to_dict()) == _identity(cfg.to_dict())


def config_diff(saved: RunConfig | None, cfg: RunConfig, most: int = 4) -> str:
    """What differs between a recorded config and ``cfg``, for an error line: ``key recorded ->
    now`` for the first ``most`` dotted keys (display settings aside), or that the recorded one
    holds a key kinject no longer has."""
    if saved is None:
        return "the recorded config holds a key this kinject no longer has"

    def flat(node: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(node, dict):
            return {k: v for key, child in node.items() for k, v in flat(child, f"{prefix}{key}.").items()}
        return {prefix[:-1]: node}

    old, new = flat(_identity(saved.to_dict())), flat(_identity(cfg.to_dict()))
    changed = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return ", ".join(changed[:most]) + (f" and {len(changed) - most} more" if len(changed) > most else "")


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
