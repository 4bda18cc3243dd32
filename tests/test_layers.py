"""The import graph: no cycles, and every import goes down the layers (or stays in one), never
up: the core (models, replay, actors, learner) knows nothing of Ray infrastructure, the
pipelines or the user interface that compose it. Function-level imports count: they are how
a cycle hides."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runners", "models", "actors", "evaluation", "learner", "replay", "cluster", "rundir", "pipelines", "ui",
            "zoo")
LAYERS = (  # lowest first; a module may import its own layer's modules and those below
    ("runners",),
    ("models",),
    ("replay",),
    ("actors", "zoo.catalog", "evaluation.protocol", "evaluation.episodes", "evaluation.holdout",
     "evaluation.statistics", "evaluation.score_cache", "evaluation.seeds"),
    ("learner",),
    ("cluster",),
    ("rundir", "zoo.publish"),
    ("ui",),
    ("pipelines", "evaluation.curve", "evaluation.command"),
    ("policy", "api"),
    ("cli", "__main__", "launch"),
)
PREFIX = "atari_distill."
# the only modules that may import ray, at their top or in a function: the Ray runner's hosting, and
# cluster/'s connecting, planning and reserving on a Ray cluster; every other module runs without Ray
RAY_ADAPTERS = ("atari_distill.runners.ray_backend", "atari_distill.cluster.runtime", "atari_distill.cluster.placement")


def layer(module: str) -> int:
    if module == "atari_distill":  # the package's own door: names re-exported from every layer, loaded lazily
        return len(LAYERS)
    module = module.removeprefix(PREFIX)
    if module in PACKAGES:  # a folder's __init__: a docstring, no imports (checked below)
        return 0
    for depth, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return depth
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def module_files() -> dict[str, Path]:
    """Every module of the package by its import name: the top folders are atari_distill's subpackages."""
    modules = {PREFIX + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules.update({PREFIX + p.stem: p for p in (ROOT / "atari_distill").glob("*.py") if p.stem != "__init__"})
    modules["atari_distill"] = ROOT / "atari_distill" / "__init__.py"
    modules["launch"] = ROOT / "launch.py"
    return modules


def imports(path: Path, modules: dict | None = None) -> list[str]:
    """Every module `path` imports, at its top or inside a function (`from a import b`: a.b where that
    is one of `modules`, else a)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in (modules or {})
                      else node.module for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: {t for t in imports(path, modules) if t in modules and t != name} for name, path in modules.items()}


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


def ray_importers(modules: dict[str, Path]) -> list[str]:
    return sorted(name for name, path in modules.items()
                  if any(target == "ray" or target.startswith("ray.") for target in imports(path)))


def test_only_the_ray_adapters_import_ray():
    """The core (models, replay, actors, learner), the pipelines and the UI run on the local runner, where
    there is no Ray: a function-level `import ray` in one of them would fail only there, and only when reached."""
    assert ray_importers(module_files()) == sorted(RAY_ADAPTERS)


def test_the_ray_check_sees_an_import_inside_a_function(tmp_path):
    ring = (ROOT / "replay" / "frame_ring.py").read_text()
    broken = tmp_path / "frame_ring.py"
    broken.write_text(ring + "\n\ndef size_in_ray():\n    import ray\n\n    return ray.available_resources()\n")
    assert ray_importers({"atari_distill.replay.frame_ring": broken}) == ["atari_distill.replay.frame_ring"]


def test_every_package_is_on_the_list():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "atari_distill"}
    assert packages == set(PACKAGES)


def test_package_inits_import_nothing():
    assert [p for p in PACKAGES if imports(ROOT / p / "__init__.py")] == []


def test_no_module_imports_a_bare_top_folder():
    """Installed, only atari_distill exists: `import models` would find another project's package, or nothing."""
    bare = [f"{path.relative_to(ROOT)}: {target}" for path in [*module_files().values(), *ROOT.glob("tests/**/*.py"),
                                                               *ROOT.glob("bench/*.py"), *ROOT.glob("examples/*.py")]
            for target in imports(path) if target.split(".")[0] in PACKAGES + ("launch",)]
    assert not bare, bare


def test_every_error_of_ours_is_one_launch_prints_as_one_line():
    """launch.py prints a ValueError as its one line (exit 2) and anything else as a bug: every
    error class a user can fix must therefore be a ValueError."""
    import importlib
    import inspect

    errors = [cls for name in import_graph() if name not in ("launch", "atari_distill.__main__")
              for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass)
              if cls.__name__.endswith("Error") and cls.__module__ == name]
    assert len(errors) >= 12
    assert [cls for cls in errors if not issubclass(cls, ValueError)] == []
