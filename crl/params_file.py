"""Reading a params file (params.msgpack: actor, critic, log alpha) back, checked against
the network a config builds.

A file that is not msgpack, or is cut short, and a file of another network (another
depth or width, scanned or unrolled blocks) are refused with one line naming the file:
`ParamsError`. flax's `from_bytes` alone would restore arrays of any shape into the
template, so another network's parameters would load and fail later, deep in a matmul.
"""

from __future__ import annotations

import pathlib

import numpy as np
from flax import serialization

SHOWN = 3  # missing/extra subtrees named in a message; the rest are counted


class ParamsError(ValueError):
    """A params file that cannot be read, or whose parameters are not the config's network."""


def read_params(path: str | pathlib.Path, template) -> dict:
    """The parameters in `path`, with the structure of `template` (a pytree of arrays or
    `jax.ShapeDtypeStruct`s, e.g. `jax.eval_shape(trainer.init_params, key)`); every leaf
    must have the template's shape and dtype."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ParamsError(f"{path}: cannot read the params file ({err.strerror or err})") from None
    try:
        found = serialization.msgpack_restore(data)
    except Exception as err:  # msgpack, numpy or flax: whatever the bytes make them raise
        raise ParamsError(f"{path}: not a readable params file ({_one_line(err)})") from None
    if not isinstance(found, dict):
        raise ParamsError(f"{path}: not a readable params file (it holds {type(found).__name__!r}, not a dict of parameters)")
    expected = serialization.to_state_dict(template)
    problem = mismatch(expected, found)
    if problem:
        raise ParamsError(f"{path}: not the network of the run's config: {problem}")
    return serialization.from_state_dict(template, found)


def mismatch(expected: dict, found: dict) -> str | None:
    """How `found` (a state dict) differs from `expected`: the first leaf of another shape
    or dtype, then the subtrees only one of them has; None when they agree."""
    missing, extra, differing = [], [], []
    _compare(expected, found, (), missing, extra, differing)
    if not (missing or extra or differing):
        return None
    parts = []
    if differing:
        where, want, got = differing[0]
        more = f" ({len(differing) - 1} more leaves differ)" if len(differing) > 1 else ""
        parts.append(f"{where} has {_difference(want, got)}{more}")
    if missing:
        parts.append(f"missing from the file: {_listed(missing)}")
    if extra:
        parts.append(f"extra in the file: {_listed(extra)}")
    return "; ".join(parts + ["check network.depth, width and scan_blocks of the run's config"])


def _compare(expected, found, where: tuple, missing: list, extra: list, differing: list) -> None:
    name = "/".join(where) or "(top level)"
    if isinstance(expected, dict) or isinstance(found, dict):
        if not (isinstance(expected, dict) and isinstance(found, dict)):
            differing.append((name, expected, found))
            return
        for key in expected:
            if key not in found:
                missing.append("/".join((*where, str(key))))
            else:
                _compare(expected[key], found[key], (*where, str(key)), missing, extra, differing)
        extra.extend("/".join((*where, str(key))) for key in found if key not in expected)
        return
    if _shape_dtype(expected) != _shape_dtype(found):
        differing.append((name, expected, found))


def _shape_dtype(leaf) -> tuple[tuple, np.dtype]:
    dtype = getattr(leaf, "dtype", None)
    return tuple(np.shape(leaf)), np.dtype(np.asarray(leaf).dtype if dtype is None else dtype)


def _difference(want, got) -> str:
    """'shape (2, 16) in the file, the config expects (1, 16)' (or the dtype, or a subtree)."""
    if isinstance(want, dict) or isinstance(got, dict):
        describe = lambda x: f"a subtree ({', '.join(map(str, x))})" if isinstance(x, dict) else "an array"  # noqa: E731
        return f"{describe(got)} in the file, the config expects {describe(want)}"
    (want_shape, want_dtype), (got_shape, got_dtype) = _shape_dtype(want), _shape_dtype(got)
    if want_shape != got_shape:
        return f"shape {got_shape} in the file, the config expects {want_shape}"
    return f"dtype {got_dtype.name} in the file, the config expects {want_dtype.name}"


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{err.__class__.__name__}: {text}" if text else err.__class__.__name__
