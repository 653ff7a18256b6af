"""The package's shape: packages by concern, imports that point down the layers, no cycles, small modules.

The layer order below is the architecture: a module may import from its own package and from packages
lower in the list, never from a higher one. Every import counts, including those inside functions
(a deferred import still couples the two modules). Each module opens with a docstring naming its concern.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "medclf"

# Lowest first. ``core`` knows nothing of the others; ``cli`` may use everything.
LAYERS = (
    "core",        # atomic writes, progress status, versions
    "config",      # paths, parameters (declare / merge / validate), the data-set registry
    "accel",       # optional CPU speed-ups behind one setting
    "data",        # discover, decode, split, cache, augment, tf.data
    "models",      # blocks, builders, transfer backbones, registry of named specs, model files
    "evaluation",  # metrics, statistics, scoring, records, selection
    "training",    # fit, callbacks, feature cache, staged transfer fit, one-model run
    "analysis",    # eda, compare, augmentation study, explain
    "plots",       # figures (take ax, return the figure)
    "reporting",   # artifacts on disk, notebook text, HTML
    "pipeline",    # plan, execute, provenance
    "cli",         # run_all and predict entry points
)
TOP_LEVEL_ALLOWED = {"__init__.py", "__main__.py"}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The medclf modules ``path`` imports (at any depth in the file), resolved to module names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        for target in targets:
            if not target.startswith("medclf"):
                continue
            # the longest known module the target names (``from medclf.x import y``: y may be a module)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        edges = _imports(path, name, known)
        # a package's own __init__ is imported implicitly by its children: not a design edge
        graph[name] = {t for t in edges if not name.startswith(t + ".")}
    return graph


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_layers_are_the_packages():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS), f"packages {sorted(packages)} differ from the layers {LAYERS}"


def test_no_flat_modules():
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in TOP_LEVEL_ALLOWED)
    assert not flat, f"modules directly under src/medclf (move them into a package by concern): {flat}"


def test_modules_are_small_and_say_what_they_are():
    too_long, undocumented = [], []
    for name, path in _modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES:
            too_long.append(f"{name} ({lines} lines)")
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))):
            undocumented.append(name)
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
    assert not undocumented, f"modules without a docstring naming their concern: {undocumented}"


def test_imports_point_down_the_layers():
    upward = []
    for module, targets in _graph().items():
        own = _layer(module)
        if own is None:  # medclf/__init__ and __main__ sit above every layer
            continue
        for target in targets:
            theirs = _layer(target)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(own):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(upward))


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, cyclic", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"a2"}, "a2": set(), "b": {"b"}}, True),
])
def test_the_cycle_finder_finds_cycles(graph, cyclic):
    assert (_find_cycle(graph) is not None) is cyclic


def test_the_import_reader_sees_deferred_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text('"""x"""\nfrom . import sibling\n\ndef f():\n    from medclf.core import io\n')
    known = {"medclf.core.io", "medclf.pkg.sibling", "medclf.pkg.mod"}
    assert _imports(source, "medclf.pkg.mod", known) == {"medclf.core.io", "medclf.pkg.sibling"}


def _readme_layout() -> dict[str, str]:
    """README's Layout block: ``{package: its text}`` for the lines under ``src/medclf/``."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        head = line.strip().split(" ", 1)[0]
        if line.startswith("  ") and head.endswith("/") and head[:-1] in LAYERS:
            current = head[:-1]
            entries[current] = line
        elif line.startswith("    ") and current:
            entries[current] += " " + line
        else:
            current = None
    return entries


def test_readme_layout_matches_the_tree():
    layout = _readme_layout()
    assert list(layout) == list(LAYERS), "README's Layout lists the packages in the layer order"
    missing = []
    for name in _modules():
        parts = name.split(".")
        if len(parts) < 3:
            continue
        package, module = parts[1], parts[-1]
        if module == "__init__" or module not in layout[package]:
            if not (module == parts[2] == parts[-1] and f"{module}/" in layout[package]):
                missing.append(name)
    assert not missing, f"modules the README's Layout does not name: {missing}"
