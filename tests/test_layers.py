"""The import graph: no cycles, and the core (actors, learner, replay, the zoo's catalog) never
reaches up into the orchestration (cluster, launch) that composes it. Function-level imports
count: they are how a cycle hides."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "learner", "replay", "cluster", "zoo")
CORE = ("actors", "learner", "replay", "zoo.catalog")


def import_graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
               for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules["launch"] = ROOT / "launch.py"
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            assert state.get(target) != "open", "import cycle: " + " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_never_imports_the_orchestration():
    upward = [(name, target) for name, targets in import_graph().items() for target in targets
              if name.startswith(CORE) and not target.startswith(CORE)]
    assert not upward, upward
