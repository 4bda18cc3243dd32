"""Connecting to Ray: a local runtime on a laptop, or an existing cluster by address.

Locally the dashboard stays off and Ray's token authentication (on by default for local
runtimes since Ray 2.59) guards every port; docs/CLUSTER.md says how a cluster gets its
token. Run from a clone, workers get it on PYTHONPATH (installed, they import the package as the
driver does); under `ray job submit` the job's working_dir does that instead. The first run in a
process sizes its runtime; later runs in the same process (a notebook) use it as it is.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from atari_distill.cluster.errors import ConfigError
from atari_distill.runners import handles

# the folder that holds the atari_distill package: a checkout, or site-packages once installed
REPO_ROOT = str(Path(sys.modules["atari_distill"].__file__).resolve().parent.parent)
# Ray's GCS keeps an event record of the last N tasks (100,000 by default, a few KiB each); a run makes
# hundreds of small actor calls a second, so the default grew the GCS by 300+ MiB in 25 minutes
# (bench/soak.py). Clusters set RAY_task_events_max_num_task_in_gcs on `ray start` (docs/CLUSTER.md).
GCS_TASK_EVENTS = 10_000
# Even capped, the record grew the GCS 25 MiB an hour in an 80-minute online run: our actors' calls
# (batches, weights, stats, reports) report no task events at all; Ray's state API still lists the actors.
NO_TASK_EVENTS = {"enable_task_events": False}
_on_lost = None  # what to do once the runtime is gone (launch.py: say so in one line and exit)
_log_to_driver = True  # Ray's default: its workers' and raylets' lines printed by this process


def from_checkout() -> bool:
    """Whether atari_distill runs from a clone (its top folders beside it), not from site-packages: Ray
    workers then need the clone on their path, as a clone run without installing does."""
    return (Path(REPO_ROOT) / "launch.py").is_file()


def on_runtime_lost(handler) -> None:
    """`handler(gcs_address)` runs, from a watchdog thread, once the Ray runtime this process connects to
    stops answering: Ray's own client would end the process a minute later with no word of why."""
    global _on_lost
    _on_lost = handler


def forward_worker_logs(on: bool) -> None:
    """Whether Ray prints its workers' and raylets' lines in this process. launch.py turns it off (but
    under --debug): Ray writes them to stdout, coloured, past the filter on fd 2 (ui/console.py), and
    they stay in Ray's own session logs (/tmp/ray/session_latest/logs) either way."""
    global _log_to_driver
    _log_to_driver = on


class RayUnavailable(RuntimeError):
    """Ray would not start or connect for a reason of the machine's, not the run's (a busy machine whose
    node timed out during startup, a stale session): the command may simply be run again."""


def connect(address: str | None, cpus_needed: int = 1, without_ray: str | None = "--runner local") -> None:
    """Starts a local Ray runtime, or joins the cluster at `address`. `without_ray`: the flag that runs the
    command with no Ray at all, offered when Ray cannot start."""
    import ray

    if ray.is_initialized():
        return  # the process's runtime, from an earlier run or the caller (a shutdown and new init in one
        # process let a later run die on "Failed to connect to GCS", 2026-12-07)
    runtime_env = None if not from_checkout() else {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}}
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        runtime_env = None  # under `ray job submit` the job's working_dir already carries the code
    if address:
        if address != "auto" and not listening(address):  # Ray would retry for minutes
            raise ConfigError(f"no Ray cluster answers at --address {address}; start its head node there or "
                              f"correct --address")
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=_log_to_driver)
        except ConnectionError:
            raise ConfigError(f"the Ray cluster at --address {address} refused this driver: its token is missing or "
                              f"not the cluster's; set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, "
                              f"or ~/.ray/auth_token) as docs/CLUSTER.md says") from None
    else:
        # Ray enables token authentication for a new local runtime and warns that it did, on every run
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        # Oversubscribe a small laptop rather than leave actors pending forever.
        cpus = max(os.cpu_count() or 1, cpus_needed)
        try:
            ray.init(num_cpus=cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1", runtime_env=runtime_env, logging_level="WARNING",
                     log_to_driver=_log_to_driver,
                     _system_config={"task_events_max_num_task_in_gcs": GCS_TASK_EVENTS})
        except Exception as error:  # Ray's own: "The current node timed out during startup", and kin
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            instead = f", or run without Ray: {without_ray}" if without_ray else ""
            raise RayUnavailable(f"Ray could not start a local runtime ({type(error).__name__}: {first}); this is the "
                                 f"machine (busy, or a stale Ray session), not the run: run the command again"
                                 f"{instead}") from error
    if _on_lost is not None:
        import threading

        threading.Thread(target=_watch, args=(ray.get_runtime_context().gcs_address,),
                         name="ray-runtime-watchdog", daemon=True).start()


def _watch(address: str, every_s: float = 2.0, misses: int = 3) -> None:
    import time

    missed = 0
    while missed < misses:
        time.sleep(every_s)
        missed = 0 if listening(address) else missed + 1
    if _on_lost is not None:  # none once the command has ended: the runtime going down is then expected
        _on_lost(address)


def listening(address: str) -> bool:
    """Whether anything accepts connections at HOST:PORT (or ray://HOST:PORT)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def require_cpus(needed: int, roles: str) -> None:
    """Refuses a run whose actors, learners and evaluators cannot all hold a CPU at once:
    Ray would leave the last ones pending and the run would wait forever."""
    import ray

    total = ray.cluster_resources().get("CPU", 0)
    if total < needed:
        raise ConfigError(f"this run needs {needed} CPUs at once ({roles}) but the Ray cluster has {total:g}; "
                          f"lower --actors or add nodes")


def has_gpu() -> bool:
    if handles.is_local():
        import torch

        return torch.cuda.is_available()
    import ray

    return ray.cluster_resources().get("GPU", 0) >= 1


LOST_RUN = {"lost": True, "steps": 0, "swaps": []}
# What a run's wind-down waits, in all, on what a lost node may hold (an actor's run, a shard's stats)
WIND_DOWN_S = float(os.environ.get("ATARI_DISTILL_WIND_DOWN_S", 30))


class WindDown:
    """One waiting budget for a whole wind-down: a node lost with an actor and a shard costs it once,
    not once for the actors' runs and again for the shards' stats."""

    def __init__(self, seconds: float = WIND_DOWN_S):
        self.ends = time.monotonic() + seconds

    def left(self, at_least: float = 5.0) -> float:
        """What is left, but never less than a live actor needs to answer."""
        return max(at_least, self.ends - time.monotonic())


def runs_within(refs: list, timeout_s: float = WIND_DOWN_S) -> list[dict]:
    """Each producer's final stats, or LOST_RUN for one that has not returned within `timeout_s` after
    it was told to stop: an actor lost with its node waits for a restart that may never find room, and
    a wind-down must not wait with it. A run that raised still raises."""
    ready, _ = handles.wait(refs, num_returns=len(refs), timeout=timeout_s)
    ready = set(ready)
    return [handles.get(ref) if ref in ready else dict(LOST_RUN) for ref in refs]


def kill_when_answered(components: list, owed: list, timeout_s: float = 5.0) -> None:
    """Kills `components` once the calls still `owed` to them (a shard's close) have answered, or after
    `timeout_s`: a call Ray sees die with retries left is printed on the user's console as a warning."""
    if owed:
        handles.wait(owed, num_returns=len(owed), timeout=timeout_s)
    for component in components:
        handles.kill(component)


def ray_memory() -> tuple[float, float]:
    """(free memory across the cluster, the largest alive node's memory), as Ray reports them."""
    import ray

    free = ray.available_resources().get("memory", 0.0)
    nodes = [n["Resources"].get("memory", 0.0) for n in ray.nodes() if n.get("Alive")]
    return free, max(nodes, default=0.0)


def on_this_node():
    """A scheduling strategy that keeps an actor on the driver's node, where its files are (the local
    runner's one process needs none)."""
    if handles.is_local():
        return None
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
