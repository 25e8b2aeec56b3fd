"""The pinned stack: constraints.txt pins every dependency the project declares, inside
pyproject.toml's ranges, and CI and the README install with it."""

from __future__ import annotations

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not an exact pin: {line!r}"
        assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
        pins[canonicalize_name(name)] = version
    return pins


def test_every_declared_dependency_is_pinned_inside_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = _pins()
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} outside {req}"
    # the stack that decides the numbers, and what jax needs to run
    assert {"jax", "jaxlib", "flax", "optax", "brax", "mujoco", "mujoco-mjx", "ml-dtypes", "scipy"} <= set(pins)
    assert pins["jax"] == pins["jaxlib"]


def test_ci_and_the_readme_install_with_the_lock():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r'pip install -c constraints\.txt -e "\.\[dev\]"', ci)
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -c constraints.txt -e ".[dev]" && crl-train' in readme
