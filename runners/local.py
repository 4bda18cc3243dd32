"""The local runner's hosting: every component in this process, each on threads of its own.

A component keeps Ray's contract, so the pipelines run unchanged: its constructor runs on its
own thread (as a Ray actor's does in its worker), calls run in the order sent on at most
`max_concurrency` threads, refs given as arguments are resolved, and what crosses between
components is copied (cloudpickled, as Ray serialises it), so no two share a live object; handles
and refs inside what is copied stay the same handle and ref.

A thread cannot be killed as a Ray worker is: a kill fails every call not yet started and asks the
component's loop to end (its `stop`, where it has one); a task's long loop ends once the run has
(`handles.cancelled`). When the run ends its components are killed and their threads joined, so no
environment outlives it (ale-py aborts a process that exits with one still open).
"""

from __future__ import annotations

import io
import itertools
import os
import pickle
import queue
import threading
import time
from concurrent.futures import Future

import cloudpickle

from atari_distill.runners import handles
from atari_distill.runners.errors import ActorLost


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file, shared: list):
        super().__init__(file, protocol=5)
        self.shared = shared

    def persistent_id(self, obj):
        if isinstance(obj, (LocalActor, Future)):
            self.shared.append(obj)
            return len(self.shared) - 1
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, shared: list):
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, pid):
        return self.shared[pid]


def copied(value):
    """`value` as another process would receive it: a deep copy in which handles and refs stay themselves."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    buffer, shared = io.BytesIO(), []
    _Pickler(buffer, shared).dump(value)
    buffer.seek(0)
    return _Unpickler(buffer, shared).load()


def resolved(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Refs given as arguments are replaced by their values (Ray resolves top-level refs); all is copied."""
    args = tuple(handles.get(a) if isinstance(a, Future) else a for a in args)
    kwargs = {k: handles.get(v) if isinstance(v, Future) else v for k, v in kwargs.items()}
    return copied(args), copied(kwargs)


class DaemonPool:
    """At most `workers` daemon threads running calls in the order sent. Daemon, unlike a
    ThreadPoolExecutor's (which Python joins at exit): a component's loop still running must never
    keep a process open that a second Ctrl-C, or the end of a script, means to end."""

    def __init__(self, workers: int, name: str, initializer=None):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.workers, self.name, self.initializer = max(1, workers), name, initializer
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.closed = False

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        with self.lock:
            if self.closed:
                raise RuntimeError(f"{self.name} is shut down")
            self.calls.put((future, fn, args, kwargs))
            if len(self.threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self.threads)}", daemon=True)
                self.threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        if self.initializer is not None:
            self.initializer()
        while True:
            item = self.calls.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # the caller's get raises it, as Ray's does
                future.set_exception(error)

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        """Calls not yet started are cancelled; one running finishes, then its thread ends."""
        with self.lock:
            self.closed = True
            while True:
                try:
                    item = self.calls.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
            for _ in self.threads:
                self.calls.put(None)


def _lost(name: str) -> Future:
    future: Future = Future()
    future.set_exception(ActorLost(f"{name} was killed"))
    return future


class LocalActor:
    """A component hosted in this process: `handle.method.remote(...)` queues the call on its threads."""

    def __init__(self, backend: "LocalBackend", cls, args: tuple, kwargs: dict, max_concurrency: int):
        self.name = cls.__name__
        backend.actors.append(self)
        self.executor = DaemonPool(max_concurrency, self.name, initializer=backend.enter)
        self.killed = False
        self.lock = threading.Lock()
        args, kwargs = resolved(args, kwargs)
        self.instance = self.executor.submit(cls, *args, **kwargs)

    def __getattr__(self, name: str) -> "_Method":
        if name.startswith("_") and name not in ("__ray_ready__", "__ray_terminate__"):
            raise AttributeError(name)
        return _Method(self, name)

    def __reduce__(self):
        raise TypeError("a local handle is shared, never copied")

    def call(self, method: str, args: tuple, kwargs: dict) -> Future:
        if method == "__ray_terminate__":
            self.kill()
            done: Future = Future()
            done.set_result(None)
            return done
        with self.lock:
            if self.killed:
                return _lost(self.name)
            args, kwargs = resolved(args, kwargs)
            return self.executor.submit(self._run, method, args, kwargs)

    def _run(self, method: str, args: tuple, kwargs: dict):
        instance = self.instance.result()
        if method == "__ray_ready__":
            return True
        return copied(getattr(instance, method)(*args, **kwargs))

    def kill(self) -> None:
        with self.lock:
            if self.killed:
                return
            self.killed = True
            self.executor.shutdown()
        if self.instance.done() and self.instance.exception() is None and hasattr(self.instance.result(), "stop"):
            self.instance.result().stop()  # a loop still running (a rollout's) ends, closing its environments


class _Method:
    def __init__(self, actor: LocalActor, name: str):
        self.actor, self.name = actor, name

    def remote(self, *args, **kwargs) -> Future:
        return self.actor.call(self.name, args, kwargs)

    def options(self, **_):
        return self


class _Remote:
    """A class or function as the local runner hosts it (Ray's placement options mean nothing here)."""

    def __init__(self, backend: "LocalBackend", target, options: dict):
        self.backend, self.target, self.opts = backend, target, options

    def options(self, **options) -> "_Remote":
        return _Remote(self.backend, self.target, {**self.opts, **options})

    def remote(self, *args, **kwargs):
        if isinstance(self.target, type):
            return LocalActor(self.backend, self.target, args, kwargs, self.opts.get("max_concurrency", 1))
        args, kwargs = resolved(args, kwargs)
        return self.backend.tasks.submit(lambda: copied(self.target(*args, **kwargs)))


class LocalBackend:
    """Components and tasks of one run, in this process. Tasks (evaluation episodes) share `workers` threads."""

    local = True
    _numbers = itertools.count()

    def __init__(self, workers: int | None = None):
        self.actors: list[LocalActor] = []
        self.ended = threading.Event()
        self.tasks = DaemonPool(workers or os.cpu_count() or 1, f"task{next(self._numbers)}", initializer=self.enter)

    def enter(self) -> None:
        """A thread of this runner: what its components start is hosted here too."""
        handles.adopt(self)

    def remote(self, target, **options) -> _Remote:
        return _Remote(self, target, options)

    def put(self, value) -> Future:
        future: Future = Future()
        future.set_result(copied(value))
        return future

    def node_id(self) -> str:
        return "local"

    def node_address(self) -> str:
        return "127.0.0.1"

    def restarted(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return self.ended.is_set()

    def close(self, timeout_s: float = 60.0) -> None:
        """The run is over: every component killed, every task told, and their threads given `timeout_s`
        in all to end."""
        self.ended.set()
        for actor in self.actors:
            actor.kill()
        self.tasks.shutdown()
        deadline = time.monotonic() + timeout_s
        for pool in [actor.executor for actor in self.actors] + [self.tasks]:
            pool.join(max(0.0, deadline - time.monotonic()))
        self.actors = []
