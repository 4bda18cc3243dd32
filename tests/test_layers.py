"""The import graph: no cycles, and every import goes down the layers (or stays in one), never
up: the core (models, replay, actors, learner) knows nothing of Ray infrastructure, the
pipelines or the user interface that compose it. Function-level imports count: they are how
a cycle hides."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "actors", "learner", "replay", "cluster", "rundir", "pipelines", "ui", "zoo")
LAYERS = (  # lowest first; a module may import its own layer's modules and those below
    ("models",),
    ("replay",),
    ("actors", "zoo.catalog"),
    ("learner",),
    ("cluster",),
    ("rundir", "zoo.publish"),
    ("ui",),
    ("pipelines",),
    ("launch",),
)


def layer(module: str) -> int:
    for depth, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return depth
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


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


def test_no_module_imports_a_higher_layer():
    upward = [f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
              if layer(target) > layer(name)]
    assert not upward, upward


def test_every_package_is_on_the_list():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(PACKAGES)


def test_every_error_of_ours_is_one_launch_prints_as_one_line():
    """launch.py prints a ValueError as its one line (exit 2) and anything else as a bug: every
    error class a user can fix must therefore be a ValueError."""
    import importlib
    import inspect

    errors = [cls for name in import_graph() if name != "launch"
              for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass)
              if cls.__name__.endswith("Error") and cls.__module__ == name]
    assert len(errors) >= 12
    assert [cls for cls in errors if not issubclass(cls, ValueError)] == []
