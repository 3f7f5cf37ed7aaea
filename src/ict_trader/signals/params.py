"""Detector parameters with validation that names the offending key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


class ParamError(ValueError):
    """A parameter override is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True, slots=True)
class SignalParams:
    """Every tunable of the ICT detector; defaults and meanings are in docs/signal.md."""

    atr_period: int = 14
    swing_length: int = 3
    displacement_atr: float = 1.5
    require_fvg: bool = True
    mss_window: int = 20
    open_delay_minutes: int = 5
    close_buffer_minutes: int = 60

    def __post_init__(self) -> None:
        _require(self.atr_period >= 1, "atr_period", "must be at least 1")
        _require(self.swing_length >= 1, "swing_length", "must be at least 1")
        _require(self.displacement_atr >= 0, "displacement_atr", "must not be negative")
        _require(self.mss_window >= 1, "mss_window", "must be at least 1")
        _require(self.open_delay_minutes >= 0, "open_delay_minutes", "must not be negative")
        _require(self.close_buffer_minutes >= 0, "close_buffer_minutes", "must not be negative")

    @classmethod
    def names(cls) -> list[str]:
        """The parameter names, in declaration order."""
        return [f.name for f in fields(cls)]

    def with_overrides(self, overrides: Mapping[str, Any]) -> SignalParams:
        """A copy with `overrides` applied; string values (from the CLI or a file) are parsed."""
        parsed: dict[str, Any] = {}
        for name, raw in overrides.items():
            default = _default_of(name)
            parsed[name] = _coerce(name, raw, type(default))
        return replace(self, **parsed)


def parse_param_assignments(assignments: list[str]) -> dict[str, str]:
    """Split CLI `NAME=VALUE` strings into a mapping, rejecting malformed ones."""
    result: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {item!r}: expected NAME=VALUE")
        result[name] = value.strip()
    return result


def _default_of(name: str) -> Any:
    if name not in SignalParams.names():
        known = ", ".join(SignalParams.names())
        raise ParamError(f"unknown signal parameter {name!r} (known: {known})")
    return getattr(SignalParams(), name)


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"true", "1", "yes", "on"}:
            return True
        if text in {"false", "0", "no", "off"}:
            return False
        raise ParamError(f"parameter {name!r}: {raw!r} is not a boolean (use true or false)")
    if isinstance(raw, bool):
        raise ParamError(f"parameter {name!r}: expected a number, got a boolean")
    try:
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(str(raw).strip()) if not isinstance(raw, int | float) else int(raw)
        return float(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ParamError(f"parameter {name!r}: {raw!r} is not {noun}") from None


def _require(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ParamError(f"parameter {name!r} {problem}")
