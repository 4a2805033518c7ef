"""The layout's rules, checked on the source: imports point one way, the Ray-free part stays
Ray-free, and no function or file grows past what a reader takes in at once."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "actors", "tune", "benchmarks")
MAX_FUNCTION_LINES = 60  # outside benchmarks/
MAX_FILE_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports anywhere in it, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pipeline import x`
    return {name for name in names if name in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that returns to its start, or None. A package's __init__ that
    imports its own submodules (a registry filling itself) is not a circle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph[name]):
            if dep.startswith(name + "."):  # a package importing its own submodule
                continue
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[name] = 2
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"p": {"p.x"}, "p.x": set()}) is None


def test_no_import_circle_between_project_modules():
    assert _cycle(_graph()) is None


# The house's arrows: each package of the project and the packages it may import besides itself.
# The foundations import nothing of the project but errors; config knows no data; selection knows no
# model, no config and no data (arrays in, positions out); the round loop stands on config, data,
# selection, update and report; labels (oracles) stand on the loop; the Ray side (actors, tune) on
# any of pipeline's packages; only the entry points (cli, compare) reach into the Ray side.
FOUNDATIONS = {"pipeline.errors", "pipeline.ids", "pipeline.registry", "pipeline.storage"}
CORE = FOUNDATIONS | {f"pipeline.{p}" for p in ("config", "data", "selection", "update", "report", "loop", "labels")}
ARROWS = {
    "pipeline.errors": set(),
    "pipeline.ids": set(),
    "pipeline.registry": {"pipeline.errors"},
    "pipeline.storage": {"pipeline.errors"},
    "pipeline.config": FOUNDATIONS,
    "pipeline.data": FOUNDATIONS | {"pipeline.config"},
    "pipeline.selection": FOUNDATIONS,
    "pipeline.report": FOUNDATIONS,
    "pipeline.update": FOUNDATIONS | {"pipeline.config", "pipeline.data"},
    "pipeline.loop": FOUNDATIONS | {f"pipeline.{p}" for p in ("config", "data", "selection", "update", "report")},
    "pipeline.labels": FOUNDATIONS | {"pipeline.config", "pipeline.data", "pipeline.loop"},
    "actors": CORE,
    "tune": CORE | {"actors"},
    "pipeline.compare": CORE | {"actors", "tune"},
    "pipeline.cli": CORE | {"actors", "tune", "pipeline.compare"},
    "pipeline.__main__": {"pipeline.cli"},
    "benchmarks": CORE | {"actors", "tune", "pipeline.compare"},
}


def _package(module: str) -> str:
    """The ARROWS key a module belongs to: pipeline's sub-package or top-level module, else its top package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else parts[0]


def test_every_package_of_the_project_has_its_arrows_stated():
    assert sorted({_package(name) for name in _modules()} - {"pipeline"} - set(ARROWS)) == []


def _against_the_arrows(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} -> {dep}"
        for name, deps in graph.items()
        for dep in deps
        if _package(name) != _package(dep) and _package(dep) not in ARROWS.get(_package(name), set())
    )


def test_an_import_against_the_arrows_is_named():
    planted = {"pipeline.selection.top_k": {"pipeline.update.models", "pipeline.errors"}, "actors.x": {"pipeline.cli"}}
    assert _against_the_arrows(planted) == [
        "actors.x -> pipeline.cli",
        "pipeline.selection.top_k -> pipeline.update.models",
    ]


def test_imports_follow_the_stated_arrows():
    assert _against_the_arrows(_graph()) == []


def test_the_stated_arrows_point_one_way():
    assert _cycle({package: set(allowed) for package, allowed in ARROWS.items()}) is None


def test_pipeline_imports_no_ray_outside_the_cli():
    offenders = []
    for name, path in _modules().items():
        if name.startswith("pipeline") and name not in ("pipeline.cli", "pipeline.__main__"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                roots = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                offenders += [f"{name}: {root}" for root in roots if root == "ray" or root.startswith("ray.")]
    assert offenders == []


@pytest.mark.parametrize("module", ["pipeline.config.run_config", "pipeline.loop.preflight"])
def test_loading_and_checking_a_config_imports_neither_torch_nor_ray(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_outside_benchmarks_is_over_60_lines():
    files = [p for package in ("pipeline", "actors", "tune", "tests") for p in (REPO / package).rglob("*.py")]
    long = [
        f"{p.relative_to(REPO)}:{line} {name} ({n} lines)"
        for p in files
        for name, line, n in _functions(p)
        if n > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_file_is_over_400_lines():
    files = [p for package in PACKAGES + ("tests",) for p in (REPO / package).rglob("*.py")]
    long = [
        f"{p.relative_to(REPO)} ({n} lines)" for p in files if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert long == []
