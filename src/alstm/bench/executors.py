"""Executors: one interface to run independent ``fn(arg)`` calls in parallel, on a local process
pool or on Ray (a local instance or a cluster).

The caller keeps at most :attr:`Executor.slots` calls in flight, collects finished ones with
:meth:`Executor.wait` and decides about retries itself (neither backend retries on its own).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Hashable
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

#: Ray's object store for a local instance: runs return small dicts, so the minimum-ish suffices.
RAY_OBJECT_STORE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Outcome:
    """The end of one call: its ``value``, or ``error`` (``"Type: message"``) when it raised."""

    value: Any = None
    error: str | None = None


class Executor(ABC):
    """Runs ``fn(arg)`` calls concurrently; ``slots`` of them can usefully run at once."""

    slots: int

    @abstractmethod
    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Hashable:
        """Start ``fn(arg)``; return a handle for :meth:`wait`."""

    @abstractmethod
    def wait(self, handles: Collection[Hashable]) -> list[tuple[Hashable, Outcome]]:
        """Block until at least one of ``handles`` finished; return the finished ones."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (calls still running are cancelled)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(err: BaseException) -> str:
    """``"Type: message"`` of an exception, as failures are reported."""
    return f"{type(err).__name__}: {err}"


def _limit_threads(threads: int) -> None:
    """Worker initializer: ``threads`` torch threads, so that workers do not fight for cores."""
    import torch

    torch.set_num_threads(threads)


class LocalExecutor(Executor):
    """A pool of ``workers`` fresh ("spawn") processes, each using ``threads_per_worker`` torch
    threads; by default as many workers as fit the machine's cores."""

    def __init__(self, workers: int | None = None, threads_per_worker: int = 1) -> None:
        if threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
        self.threads = threads_per_worker
        self.slots = workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
        self._pool = self._new_pool()

    def _new_pool(self) -> futures.ProcessPoolExecutor:
        return futures.ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(self.threads,),
        )

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Hashable:
        """Start ``fn(arg)`` in a worker process."""
        return self._pool.submit(fn, arg)

    def wait(self, handles: Collection[Hashable]) -> list[tuple[Hashable, Outcome]]:
        """The calls among ``handles`` that finished (at least one)."""
        done, _ = futures.wait(handles, return_when=futures.FIRST_COMPLETED)  # type: ignore[arg-type]
        finished: list[tuple[Hashable, Outcome]] = []
        broken = False
        for fut in done:
            err = fut.exception()
            broken |= isinstance(err, BrokenProcessPool)
            outcome = Outcome(value=fut.result()) if err is None else Outcome(error=describe(err))
            finished.append((fut, outcome))
        if broken:
            # A worker died (e.g. killed for memory): the pool refuses new work, so start a
            # fresh one for the calls the caller still submits (its retries included).
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return finished

    def close(self) -> None:
        """Stop the pool, cancelling calls that have not started."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Each call a Ray task with ``threads_per_worker`` CPUs and ``gpus_per_run`` GPUs, on the
    cluster at ``address`` or on a local instance with ``num_cpus`` CPUs (default: all cores)
    whose session files live in a temporary folder removed on :meth:`close`."""

    def __init__(
        self,
        threads_per_worker: int = 1,
        gpus_per_run: float = 0.0,
        address: str | None = None,
        num_cpus: int | None = None,
        workers: int | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as err:  # declared in pyproject; a broken install should say so
            raise ImportError("the ray executor needs Ray: pip install 'ray>=2.9'") from err
        self._ray = ray
        self._tmp: str | None = None
        if address is not None:
            ray.init(address=address, log_to_driver=False)
        else:
            # Short path: Ray's socket names must stay under the OS limit of ~107 characters.
            self._tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=RAY_OBJECT_STORE_BYTES,
                _temp_dir=self._tmp,
            )
        cpus = ray.cluster_resources().get("CPU", 1.0)
        self.slots = workers or max(1, int(cpus // threads_per_worker))
        self._options = {
            "num_cpus": threads_per_worker,
            "num_gpus": gpus_per_run,
            "max_retries": 0,  # the bench runner retries, and counts the attempts
        }
        self._remote: dict[Callable[[Any], Any], Any] = {}

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Hashable:
        """Submit ``fn(arg)`` as a Ray task with the declared resources."""
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(**self._options)(fn)
        return self._remote[fn].remote(arg)

    def wait(self, handles: Collection[Hashable]) -> list[tuple[Hashable, Outcome]]:
        """The tasks among ``handles`` that finished (at least one)."""
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        finished: list[tuple[Hashable, Outcome]] = []
        for ref in ready:
            try:
                finished.append((ref, Outcome(value=self._ray.get(ref))))
            except self._ray.exceptions.RayTaskError as err:
                # Report the task's own exception, not Ray's wrapper with its remote traceback.
                finished.append((ref, Outcome(error=describe(err.cause or err))))
            except self._ray.exceptions.RayError as err:  # worker died, task cancelled, …
                finished.append((ref, Outcome(error=describe(err))))
        return finished

    def close(self) -> None:
        """Shut Ray down (and remove the local instance's session folder)."""
        self._ray.shutdown()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
