"""The import graph: the core is pure, imports flow one way (apps -> crl -> envs), no cycles.

Read from the source (ast), so a lazy import inside a function counts like any other."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = ("crl", "envs")
# Libraries only applications may use (crl/apps/): the core stays importable in a notebook,
# a cluster job or another program without them.
APP_LIBRARIES = {"hydra", "omegaconf", "argparse", "tqdm", "matplotlib", "imageio", "pandas", "wandb"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for top in PROJECT:
        for path in sorted((REPO / top).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(path: pathlib.Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import statement of a file; an import
    inside a function whose line says `lazy` (a heavy dependency deferred on purpose) counts
    as inside=False for the local-import rule, but stays an edge of the graph."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            local = in_function and "# lazy" not in lines[getattr(child, "lineno", 1) - 1]
            if isinstance(child, ast.Import):
                found.extend((alias.name, local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from crl import buffer` imports the module crl.buffer
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in MODULES else base, local))
            visit(child, inner)

    visit(tree, False)
    return found


def _project_edges() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        targets = set()
        for module, _ in _imports(path):
            # the module itself, or the project module that defines the imported name;
            # the parent packages that Python initialises first are not edges of a cycle
            parts = module.split(".")
            candidates = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
            target = next((c for c in candidates if c in MODULES), None)
            if target is not None and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def _is_core(name: str) -> bool:
    return name.startswith("crl") and not name.startswith("crl.apps")


def test_no_import_cycle_among_project_modules():
    edges = _project_edges()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def walk(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)


def test_imports_flow_one_way_apps_then_core_then_envs():
    edges = _project_edges()
    for name, targets in edges.items():
        if name.startswith("envs"):
            assert not [t for t in targets if t.startswith("crl")], f"{name} imports crl: envs must not"
        if _is_core(name):
            assert not [t for t in targets if t.startswith("crl.apps")], f"core module {name} imports an app"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _is_core(n) or n.startswith("envs")))
def test_core_and_envs_import_no_application_library(name):
    used = {module.split(".")[0] for module, _ in _imports(MODULES[name])}
    assert not used & APP_LIBRARIES, f"{name} imports {sorted(used & APP_LIBRARIES)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_function_local_import_of_project_modules(name):
    """Project modules import each other at the top: a local import would hide a cycle
    (a lazy import of a heavy optional library is fine, with a comment)."""
    local = sorted({m for m, inside in _imports(MODULES[name]) if inside and m.split(".")[0] in PROJECT})
    assert not local, f"{name} imports {local} inside a function"


def test_the_graph_reader_sees_real_edges():
    """Guard the guards: the reader finds imports the tests above rely on."""
    edges = _project_edges()
    assert "crl.train" in edges["crl.run"] and "crl.buffer" in edges["crl.train"]
    assert "crl.run" in edges["crl.apps.train"] and "envs.base" in edges["crl.train"]


def test_the_registry_knows_every_id_without_importing_physics():
    """Family packages keep their ids as data: listing them (and rejecting an unknown id)
    imports neither Brax nor MuJoCo."""
    import subprocess
    import sys

    code = ("import sys, envs; ids = envs.known_ids(); "
            "print(len(ids), any(m.split('.')[0] in ('brax', 'mujoco') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    count, physics = out.stdout.split()
    assert int(count) > 30 and physics == "False", out.stderr[-2000:]
