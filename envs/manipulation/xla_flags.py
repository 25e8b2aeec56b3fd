"""The XLA flag the arm's MJX physics needs on a CPU, set before jax starts its backend.

XLA's CPU fusion emitters (the default in jaxlib 0.10) compile the vmapped MJX step of
the paper's model into code whose run time explodes with the batch: one control step
took 0.03 s for 1 env but 33-38 s for 16 (the "hang" seen at 64-512 envs; gdb shows
both XLA threads busy inside nested fused computations, no lock or LAPACK call waiting).
The legacy elemental emitter (`--xla_cpu_use_fusion_emitters=false`) compiles the same
HLO (the same physics) into code that runs 16 envs in 0.14 s and compiles faster. GPUs
are unaffected (the flag is CPU only).

XLA reads XLA_FLAGS once, when jax initialises its backend (the first computation or
device query, not `import jax`). `ensure()` therefore appends the flag to XLA_FLAGS only
while no backend exists yet, and otherwise warns once. `import envs.manipulation` calls
it: `crl-train` builds its envs before its first jax computation, and the benchmark and
the tests import this package first. Set CRL_ARM_KEEP_XLA_FLAGS=1 to leave XLA_FLAGS alone.

Whether a backend exists is read from a private internal of jax,
`jax._src.xla_bridge._backends` (no public API tells it without starting one). A jax
that moved it fails that import with one line naming the version found and KNOWN_JAX,
the version known to work (constraints.txt's pin; tests/test_private_internals.py).
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

FLAG = "--xla_cpu_use_fusion_emitters=false"
KNOWN_JAX = "0.10.2"  # the jax whose jax._src.xla_bridge._backends this reads


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        backends = xla_bridge._backends
    except (ImportError, AttributeError):
        raise ImportError(
            f"envs.manipulation: jax {importlib.metadata.version('jax')} has no jax._src.xla_bridge._backends "
            f"(a private internal; known to work: jax {KNOWN_JAX}, as pinned in constraints.txt)"
        ) from None
    return bool(backends)


def ensure() -> bool:
    """Add FLAG to XLA_FLAGS if jax has no backend yet; True when it is in effect."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" in flags:
        return FLAG in flags.split()
    if os.environ.get("CRL_ARM_KEEP_XLA_FLAGS") == "1":
        return False
    if _backend_started():
        warnings.warn(
            "envs.manipulation: jax started its backend before this import, so XLA_FLAGS can no "
            f"longer take {FLAG}; batched arm physics on a CPU will be very slow. Import "
            "envs.manipulation (or set XLA_FLAGS) before the first jax computation.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
