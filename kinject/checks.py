"""Range and enumeration checks of config values, declared beside each config's fields.

A config dataclass lists its checks in a class variable ``CHECKS: ClassVar[dict[str, Check]]``
(field name -> check); :func:`check_section` runs them when the config is loaded, before any
work. A check returns what is wrong with a value (a phrase such as ``"must be > 0"``), or None.
``None`` as a value always passes: an optional field documents what null means ("all", "the run
seed"). Cross-field rules stay with the code that needs them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from kinject.errors import UserError

Check = Callable[[Any], "str | None"]

SEED_LIMIT = 2**32  # numpy's and torch's generators take seeds in [0, 2**32)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive(value: Any) -> str | None:
    """A finite number > 0 (a learning rate, an epoch count, a temperature of a mask)."""
    return None if _number(value) and math.isfinite(value) and value > 0 else "must be a finite number > 0"


def non_negative(value: Any) -> str | None:
    """A finite number >= 0 (a weight decay, a noise scale, a sampling temperature)."""
    return None if _number(value) and math.isfinite(value) and value >= 0 else "must be a finite number >= 0"


def at_least(low: float) -> Check:
    """A finite number >= ``low`` (counts and sizes: ``at_least(1)``)."""
    def check(value: Any) -> str | None:
        return None if _number(value) and math.isfinite(value) and value >= low else f"must be >= {low:g}"
    return check


def fraction(value: Any) -> str | None:
    """A number in [0, 1]."""
    return None if _number(value) and 0 <= value <= 1 else "must be in [0, 1]"


def open_fraction(value: Any) -> str | None:
    """A number in (0, 1] (top-p)."""
    return None if _number(value) and 0 < value <= 1 else "must be in (0, 1]"


def seed_range(value: Any) -> str | None:
    return None if isinstance(value, int) and 0 <= value < SEED_LIMIT else f"must be in [0, {SEED_LIMIT})"


def one_of(*allowed: Any) -> Check:
    """One of ``allowed`` (compared by value and type: ``True`` is not ``1``)."""
    def check(value: Any) -> str | None:
        if any(value == a and type(value) is type(a) for a in allowed):
            return None
        return "is not one of " + ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
    return check


def each_one_of(*allowed: str) -> Check:
    """A list whose every item is one of ``allowed``."""
    def check(value: Any) -> str | None:
        bad = [v for v in value if v not in allowed]
        return f"has {bad[0]!r}, which is not one of {', '.join(allowed)}" if bad else None
    return check


def non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def slice_bounds(spec: str) -> tuple[int | None, int | None]:
    """(start, stop) of a slice spec of decoder layers: "5:", "0:5", ":5", or "3" (= 3:4);
    ValueError when ``spec`` is none of these."""
    parts = [int(p) if p.strip() else None for p in str(spec).split(":")]
    if len(parts) == 1:
        parts = [parts[0], parts[0] + 1 if parts[0] is not None else None]
    if len(parts) != 2:
        raise ValueError(spec)
    return parts[0], parts[1]


def layer_spec(value: Any) -> str | None:
    """A slice of decoder layers (:func:`slice_bounds`)."""
    try:
        slice_bounds(value)
    except ValueError:
        return "is not a slice like '5:' or '0:5'"
    return None


def check_section(section: Any, prefix: str) -> None:
    """Run the CHECKS of ``section`` and of every dataclass inside it; UserError naming the first
    key at fault (``prefix``: its dotted path, e.g. ``train``)."""
    checks: dict[str, Check] = getattr(type(section), "CHECKS", {})
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            check_section(value, key)
            continue
        check = checks.get(f.name)
        problem = check(value) if check is not None and value is not None else None
        if problem is not None:
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            raise UserError(f"config key {key!r}: {shown} {problem}")
