"""Nested dicts <-> the config dataclasses: building one with every leaf checked against its
annotation (one-line `ConfigError`s naming the key), and the tree of written defaults."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the key."""


def coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check one leaf against its annotation; accept 1e6-style floats for integer keys."""
    hint = annotation
    allow_none = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        allow_none = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"{key}: None is not allowed; give a value of type {getattr(hint, '__name__', hint)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {value!r} is not allowed; use true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{key}: {value!r} is not allowed; use an integer")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: {value!r} is not allowed; use a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} is not allowed; use a string")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: {value!r} is not allowed; use a mapping of names to values")
        return dict(value)
    return value


def build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: {data!r} is not allowed; use a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = build(hints[name], value, key)
        else:
            kwargs[name] = coerce(key, value, hints[name])
    return cls(**kwargs)


def default_tree(cls) -> dict:
    """The defaults as written in the dataclasses, before any derivation (None stays None):
    the one source the Hydra entry point registers as its config groups."""
    tree = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            tree[f.name] = f.default
        elif dataclasses.is_dataclass(f.default_factory):
            tree[f.name] = default_tree(f.default_factory)
        else:
            tree[f.name] = f.default_factory()
    return tree
