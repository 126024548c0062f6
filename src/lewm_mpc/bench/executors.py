"""Where jobs run: inline, in a local process pool, or on a Ray cluster.

Every executor yields results as jobs finish (in any order); the caller stores each one as it
arrives, so an interruption loses only the jobs still running. The same job gives the same
result on every executor (see :mod:`lewm_mpc.bench.worker`).
"""

from __future__ import annotations

import abc
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import TracebackType

import torch

from lewm_mpc.bench.jobs import Job
from lewm_mpc.bench.worker import JobResult, clear_cache, run_job
from lewm_mpc.ray_support import connect, import_ray


class Executor(abc.ABC):
    """Runs jobs and yields their results as they finish; a context manager."""

    @abc.abstractmethod
    def run(self, jobs: Sequence[Job]) -> Iterator[JobResult]:
        """Yield one result per job, in completion order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs jobs one after another in this process (restoring its torch thread count)."""

    def run(self, jobs: Sequence[Job]) -> Iterator[JobResult]:
        threads = torch.get_num_threads()
        try:
            for job in jobs:
                yield run_job(job)
        finally:
            torch.set_num_threads(threads)
            clear_cache()


def _init_worker() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")


class ProcessExecutor(Executor):
    """A pool of ``workers`` fresh (spawned) processes; each caches models between its jobs.

    Args:
        workers: processes (each job uses ``job.threads`` torch threads).
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def run(self, jobs: Sequence[Job]) -> Iterator[JobResult]:
        if not jobs:
            return
        if self._pool is None:
            # Spawn, not fork: forking a process whose torch/OpenMP threads are running can hang.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )  # fmt: skip
        pending: set[Future[JobResult]] = {self._pool.submit(run_job, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Jobs as Ray tasks (``num_cpus = job.threads`` each).

    Connects to ``address`` (else the ``RAY_ADDRESS`` environment variable); with neither,
    starts a local cluster of ``num_cpus`` CPUs, shut down on :meth:`close`. Workers on a
    remote cluster need ``lewm-mpc`` installed and the model/dataset paths readable.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``, ...).
        num_cpus: CPUs of the local cluster started when no address is given.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.ray = import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self._started = False

    def _connect(self) -> None:
        self._started = connect(self.ray, self.address, self.num_cpus) or self._started

    def run(self, jobs: Sequence[Job]) -> Iterator[JobResult]:
        if not jobs:
            return
        self._connect()
        ray = self.ray
        remote = ray.remote(run_job)
        pending = [remote.options(num_cpus=job.threads).remote(job) for job in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


def make_executor(
    kind: str, workers: int | None = None, ray_address: str | None = None
) -> Executor:
    """``"local"`` (inline for one worker, else a process pool) or ``"ray"``.

    Args:
        kind: "local" or "ray".
        workers: local processes (None: 1, inline), or the CPUs of a local Ray cluster
            (None: all of the machine's).
        ray_address: Ray cluster address (default ``RAY_ADDRESS``; none: a local cluster).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if kind == "local":
        return InlineExecutor() if workers in (None, 1) else ProcessExecutor(workers)
    if kind == "ray":
        return RayExecutor(ray_address, num_cpus=workers)
    raise ValueError(f"unknown executor {kind!r}; expected 'local' or 'ray'")
