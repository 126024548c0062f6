"""Where collection chunks run: in this process, in a local process pool, or as Ray tasks.

A chunk is a range of episodes written as one part file. Episode ``i`` depends only on
``(seed, i)``, so every runner produces the same parts. Each part is committed as soon as its
chunk is done, so an interrupted collection keeps every finished chunk.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm.auto import tqdm

from lewm_mpc.data.format import DatasetMeta, Episode
from lewm_mpc.data.writer import write_episodes
from lewm_mpc.types import Policy


@dataclass(frozen=True)
class Chunk:
    """Episodes ``first .. last`` (inclusive), written to ``path``."""

    first: int
    last: int
    path: Path

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class ChunkWork:
    """What every chunk of one collection needs (picklable for process pools and Ray).

    Attributes:
        make_env: creates the env.
        make_policy: creates the data policy for an env.
        meta: the dataset's settings (seed, episode length, action block, ...).
        collect_chunk: collects a chunk and writes its part file; returns the chunk.
        chunk_episodes: collects a chunk and returns its episodes (written by the caller).
    """

    make_env: Callable[[], gym.Env]
    make_policy: Callable[[gym.Env], Policy]
    meta: DatasetMeta
    collect_chunk: Callable[..., Chunk]
    chunk_episodes: Callable[..., list[Episode]]


def _sequential(work: ChunkWork, todo: Sequence[Chunk], bar: tqdm) -> None:
    for chunk in todo:
        work.collect_chunk(work.make_env, work.make_policy, chunk, work.meta,
                           on_episode=lambda: bar.update(1))  # fmt: skip


def _process_pool(work: ChunkWork, todo: Sequence[Chunk], bar: tqdm, workers: int) -> None:
    context = multiprocessing.get_context("spawn")
    executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures = [
            executor.submit(work.collect_chunk, work.make_env, work.make_policy, chunk, work.meta)
            for chunk in todo
        ]
        for future in concurrent.futures.as_completed(futures):
            bar.update(future.result().size)
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _ray_tasks(
    work: ChunkWork,
    todo: Sequence[Chunk],
    bar: tqdm,
    workers: int | None,
    address: str | None,
) -> None:
    """Each chunk a Ray task returning its episodes; parts are written here as tasks finish."""
    from lewm_mpc.ray_support import connect, import_ray

    ray = import_ray()
    started = connect(ray, address, workers)
    remote = ray.remote(work.chunk_episodes)
    pending: dict[Any, Chunk] = {
        remote.remote(work.make_env, work.make_policy, chunk, work.meta): chunk for chunk in todo
    }
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                chunk = pending.pop(ref)
                episodes = ray.get(ref)
                write_episodes(chunk.path, episodes, work.meta, first_episode=chunk.first)
                bar.update(chunk.size)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def run_chunks(
    work: ChunkWork,
    todo: Sequence[Chunk],
    bar: tqdm,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
) -> None:
    """Collect every chunk of ``todo`` into its part file.

    Args:
        work: the collection's factories and settings.
        todo: the chunks to collect.
        bar: progress bar over episodes.
        executor: ``"local"``: this process (``workers`` 1 or a single chunk) or a pool of
            ``workers`` spawned processes; ``"ray"``: Ray tasks.
        workers: local processes, or the CPUs of a local Ray cluster started when there is no
            address (1: Ray's default, all CPUs).
        ray_address: Ray cluster address (default ``RAY_ADDRESS``).
    """
    if executor == "ray":
        if todo:
            _ray_tasks(work, todo, bar, None if workers == 1 else workers, ray_address)
    elif executor != "local":
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    elif workers == 1 or len(todo) <= 1:
        _sequential(work, todo, bar)
    else:
        _process_pool(work, todo, bar, min(workers, len(todo)))


__all__ = ["Chunk", "ChunkWork", "run_chunks"]
