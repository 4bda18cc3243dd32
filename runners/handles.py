"""The calls a run's components make on one another, whichever runner hosts them.

A component (a replay shard, a rollout actor, a learner) is a plain class; a runner hosts it
and hands out a handle whose methods are called as `handle.method.remote(...)`, giving a ref
that `get` and `wait` resolve. The Ray runner's handles and refs are Ray's own; the local
runner's are in-process (runners/local.py). `get`, `wait` and `kill` tell them apart by type,
so a component never needs to know which runner it is in; `remote` and `put` make new ones
on the runner of the run in progress (`running`), Ray where none is set (a Ray worker).

Both runners raise the same two errors: ActorLost for a component that died or was killed,
AnswerTimeout for a `get` that ran out of time.
"""

from __future__ import annotations

import contextlib
import contextvars
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures

from atari_distill.runners.errors import ActorLost, AnswerTimeout

__all__ = ["ActorLost", "AnswerTimeout", "current", "running", "adopt", "is_local", "get", "wait", "kill", "remote", "put",
           "node_id", "node_address", "cancelled", "restarted"]

_backend: contextvars.ContextVar = contextvars.ContextVar("atari_distill_runner", default=None)


def current():
    """The backend of the run in progress in this context: the local one, or Ray's."""
    backend = _backend.get()
    return _ray() if backend is None else backend


@contextlib.contextmanager
def running(backend):
    """Components this context starts are hosted by `backend` until the block ends."""
    token = _backend.set(backend)
    try:
        yield backend
    finally:
        _backend.reset(token)


def adopt(backend) -> None:
    """This thread belongs to `backend` for its life (a local component's or task's thread)."""
    _backend.set(backend)


def is_local() -> bool:
    return current().local


def _is_local(refs) -> bool:
    """The local runner's refs are Futures; anything else is Ray's."""
    first = refs[0] if isinstance(refs, (list, tuple)) and refs else refs
    return isinstance(first, Future) or (isinstance(refs, (list, tuple)) and not refs)


def _ray():
    from atari_distill.runners.ray_backend import RAY

    return RAY


def get(refs, timeout: float | None = None):
    """The value of a ref (or each of a list of refs), waiting at most `timeout` seconds."""
    if not _is_local(refs):
        return _ray().get(refs, timeout)
    if isinstance(refs, (list, tuple)):
        return [get(ref, timeout) for ref in refs]  # a deadline each: as good as Ray's one for our waits
    try:
        return refs.result(timeout)
    except FutureTimeout:
        raise AnswerTimeout(f"no answer within {timeout:g} s") from None
    except CancelledError:
        raise ActorLost("its component was killed before the call ran") from None


def wait(refs: list, num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
    """(ready, not ready), as `ray.wait`: the first `num_returns` refs to be ready, or all ready by `timeout`."""
    refs = list(refs)
    if not _is_local(refs):
        return _ray().wait(refs, num_returns, timeout)
    pending, ready = set(refs), set()
    while len(ready) < num_returns and pending:
        done, pending = wait_futures(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            break
        ready |= done
    chosen = [r for r in refs if r in ready][:num_returns]
    return chosen, [r for r in refs if r not in chosen]


def kill(handle) -> None:
    """Ends a component at once; calls still queued fail with ActorLost."""
    if type(handle).__module__.startswith("ray"):
        _ray().kill(handle)
    else:
        handle.kill()


def remote(target, **options):
    """`target` (a class or a function) as the current runner hosts it: `.options(...)`, then `.remote(...)`."""
    return current().remote(target, **options)


def put(value):
    """A ref to `value`, to hand to many calls without copying it for each."""
    return current().put(value)


def node_id() -> str:
    """The node this code runs on (the local runner's one node: "local")."""
    return current().node_id()


def node_address() -> str:
    """This node's IP address, where other nodes reach it."""
    return current().node_address()


def cancelled() -> bool:
    """Whether the run hosting this code has ended, so a long loop (episodes, held-out frames) should
    stop and free its environments: a local runner's thread cannot be killed as a Ray worker is."""
    return current().cancelled()


def restarted() -> bool:
    """Whether the component running this code is a restart of one that died (Ray restarts actors)."""
    return current().restarted()
