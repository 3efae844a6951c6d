"""The dependency rules of the layout (docs/architecture.md), checked on the source:
packages import only packages below them, and no module imports itself back through
others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A package may import its own modules and those of lower layers, never a higher or a
# sibling layer: settings and metrics at the bottom, then the sinks, then the stream
# stages, the retention job and erasure (independent of each other), the HTTP API and the capture
# endpoint (independent of each other), the entry points, and the benchmarks on top.
LAYERS = {
    "config": 0,
    "metrics": 0,
    "sinks": 1,
    "streams": 2,
    "retention": 2,
    "erasure": 2,
    "api": 3,
    "capture": 3,
    "replay_ingest": 4,
    "bench": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {
        _module_name(path): path for package in LAYERS for path in (ROOT / package).rglob("*.py")
    }
    return {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}


def test_packages_import_only_lower_layers() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if (top := module.split(".")[0]) != (other := target.split(".")[0])
        and LAYERS[other] >= LAYERS[top]
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
