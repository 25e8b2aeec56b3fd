"""Env parameters declared once, with their defaults and allowed values, and checked by value.

A family declares its parameters as a frozen dataclass whose fields use `param`:

    @dataclasses.dataclass(frozen=True)
    class PointMazeParams:
        speed: float = param(0.25, low=0.0, low_open=True, doc="distance per step at |action| = 1")

and builds them with `build(PointMazeParams, env_id, kwargs)`, which refuses an unknown
name, a value of the wrong type or one outside its range with one line naming the key:

    env.params.speed: -1.0 is not allowed; use a number > 0
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def param(default: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
          high_open: bool = False, choices: tuple | None = None, doc: str = "", key: str | None = None):
    """A dataclass field with its allowed values: [low, high] (open ends where asked) or `choices`.
    `key`: where a config sets it, when not env.params.<name> (e.g. env.episode_length)."""
    return dataclasses.field(default=default, metadata={
        "low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices, "doc": doc,
        "key": key,
    })


def allowed(field: dataclasses.Field, kind: type) -> str:
    """'use a number > 0', 'use one of spring, mjx', ... for one field."""
    m = field.metadata
    if m.get("choices") is not None:
        return "use one of " + ", ".join(str(c) for c in m["choices"])
    if typing.get_origin(kind) is tuple:  # tuple[int, ...]: a list whose items obey the bounds
        noun = "a list of integers"
    else:
        noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, kind.__name__)
    bounds = []
    if m.get("low") is not None:
        bounds.append(f"{'>' if m['low_open'] else '>='} {m['low']}")
    if m.get("high") is not None:
        bounds.append(f"{'<' if m['high_open'] else '<='} {m['high']}")
    return f"use {noun}" + (" " + " and ".join(bounds) if bounds else "")


def _check(name: str, value: Any, field: dataclasses.Field, kind: type) -> Any:
    key = field.metadata.get("key") or f"env.params.{name}"
    rule = allowed(field, kind)
    if typing.get_origin(kind) is tuple:  # each item checked as the item type, same bounds
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{key}: {value!r} is not allowed; {rule}")
        item = typing.get_args(kind)[0]
        try:
            return tuple(_check(name, v, field, item) for v in value)
        except ValueError:
            raise ValueError(f"{key}: {list(value)!r} is not allowed; {rule}") from None
    ok_type = {
        bool: isinstance(value, bool),
        int: isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == int(value),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(kind, True)
    if not ok_type:
        raise ValueError(f"{key}: {value!r} is not allowed; {rule}")
    given, value = value, kind(value) if kind in (int, float) else value
    m = field.metadata
    low, high = m.get("low"), m.get("high")
    if (
        (m.get("choices") is not None and value not in m["choices"])
        or (low is not None and (value < low or (m["low_open"] and value == low)))
        or (high is not None and (value > high or (m["high_open"] and value == high)))
    ):
        raise ValueError(f"{key}: {given!r} is not allowed; {rule}")
    return value


def build(cls, env_id: str, values: dict):
    """`cls(**values)` after checking every name and value (ValueError/KeyError, one line)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise KeyError(f"env.params.{unknown[0]}: not a parameter of {env_id}; allowed: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    checked = {name: _check(name, value, fields[name], hints[name]) for name, value in values.items()}
    return cls(**checked)


def describe(cls) -> list[dict]:
    """Every parameter's name, default, allowed values and meaning (for docs and --help)."""
    hints = typing.get_type_hints(cls)
    return [
        {"name": f.name, "default": f.default, "allowed": allowed(f, hints[f.name]), "doc": f.metadata.get("doc", "")}
        for f in dataclasses.fields(cls)
    ]
