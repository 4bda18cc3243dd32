"""atari_distill: distil Atari DQN teachers into students 4-25x smaller, or ten games into one
network, on Ray from a laptop to a cluster.

    import atari_distill as ad

    result = ad.distill(dataset="datasets/pong", student="net3", updates=2000, out="runs/pong-net3")
    result.per_game["pong"].student.mean        # its report-seed score
    policy = ad.load_student(result.run_dir)     # uint8 (N, 4, 84, 84) -> Q values, greedy actions

Every command of `python launch.py` is a function here whose keywords are its flags
(`eval_every=500` for `--eval-every 500`); runs return a `RunResult` read from the summary.json
they wrote. Names load on first use, so `import atari_distill` stays cheap.
"""

from __future__ import annotations

import importlib
import os

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if all(os.path.exists(os.path.join(_CHECKOUT, part)) for part in ("launch.py", "pyproject.toml", "replay")):
    # run from a clone without installing (a Ray job's working_dir): the top folders are the subpackages
    __path__.append(_CHECKOUT)  # noqa: F821 (a package's own __path__)

_EXPORTS = {
    "atari_distill.api": ("distill", "multitask", "teacher", "online", "record", "evaluate", "export", "watch",
                          "report"),
    "atari_distill.policy": ("Policy", "load_student", "load_teacher"),
    "atari_distill.rundir.result": ("RunResult", "StudentResult", "GameResult", "Score"),
    "atari_distill.pipelines.stopping": ("StopToken",),
    "atari_distill.cluster.errors": ("ConfigError",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'atari_distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
