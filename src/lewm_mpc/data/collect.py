"""Rollout collection into an HDF5 dataset: deterministic per episode, resumable, atomic.

Episode ``i`` depends only on ``(seed, i)``: the env is reset with :func:`episode_seed` and the
policy with ``np.random.default_rng([seed, i])``. Episodes are collected in chunks, each written
atomically as ``<path>.parts/part-<first>-<last>.h5``; an interrupted run keeps its complete parts
and a rerun skips them. When every part exists they are merged atomically into ``path`` and the
parts directory is removed. An existing ``path`` is never overwritten with different settings.

With ``action_block=K`` a row is one frame followed by ``K`` env actions: the env steps ``K``
times between stored frames, and only stored frames are rendered (for an env with state
observations, through ``env.unwrapped.render_state``). One episode's rollout lives in
:mod:`lewm_mpc.data.rollout`; its names stay importable from here.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.data.chunk_runners import Chunk, ChunkWork, run_chunks
from lewm_mpc.data.format import PIXELS_KEY as PIXELS_KEY  # re-exported, as before
from lewm_mpc.data.format import DatasetMeta, Episode, inspect_dataset
from lewm_mpc.data.rollout import _frame_of as _frame_of  # re-exported, as before
from lewm_mpc.data.rollout import _is_pixels as _is_pixels  # re-exported, as before
from lewm_mpc.data.rollout import _pixels_of as _pixels_of  # re-exported, as before
from lewm_mpc.data.rollout import _state_of as _state_of  # re-exported, as before
from lewm_mpc.data.rollout import collect_episode, env_action_bounds, env_control_hz
from lewm_mpc.data.rollout import episode_seed as episode_seed  # re-exported, as before
from lewm_mpc.data.writer import merge, stray_tmp_files, write_episodes
from lewm_mpc.types import Policy

_PART_PATTERN = re.compile(r"^part-(\d+)-(\d+)\.h5$")


def _part_path(parts_dir: Path, first: int, last: int) -> Path:
    return parts_dir / f"part-{first:06d}-{last:06d}.h5"


def _chunk_episodes(
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[gym.Env], Policy],
    chunk: Chunk,
    meta: DatasetMeta,
    on_episode: Callable[[], None] | None = None,
) -> list[Episode]:
    """Collect one chunk's episodes with a fresh env and policy."""
    env = make_env()
    try:
        policy = make_policy(env)
        episodes = []
        for episode in range(chunk.first, chunk.last + 1):
            episodes.append(
                collect_episode(
                    env, policy, meta.episode_steps, meta.seed, episode, meta.action_block
                )
            )
            if on_episode is not None:
                on_episode()
    finally:
        env.close()
    return episodes


def _collect_chunk(
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[gym.Env], Policy],
    chunk: Chunk,
    meta: DatasetMeta,
    on_episode: Callable[[], None] | None = None,
) -> Chunk:
    """Collect one chunk and write it atomically as its part file."""
    episodes = _chunk_episodes(make_env, make_policy, chunk, meta, on_episode)
    write_episodes(chunk.path, episodes, meta, first_episode=chunk.first)
    return chunk


def _remove_leftovers(path: Path, parts_dir: Path, covered: int) -> None:
    """Delete what an interrupted run left that ``path`` already holds or that cannot be
    reused: temporary files of atomic writes, and everything in ``parts_dir`` but the parts
    starting at episode ``covered`` or later (a run killed after its merge left the whole
    dataset twice). Those stay for a later, longer collection."""
    for stray in stray_tmp_files(path):
        stray.unlink(missing_ok=True)
    if not parts_dir.is_dir():
        return
    for entry in parts_dir.iterdir():
        match = _PART_PATTERN.match(entry.name)
        if match is not None and entry.is_file() and int(match.group(1)) >= covered:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if not any(parts_dir.iterdir()):
        parts_dir.rmdir()


def _existing_parts(parts_dir: Path, meta: DatasetMeta, begin: int, end: int) -> list[Chunk]:
    """Complete, usable parts in ``parts_dir`` for episodes ``begin .. end - 1``, sorted.

    Unreadable parts and parts outside the range or overlapping a chosen one are ignored (they
    are re-collected; the merged ones are removed after the merge).

    Raises:
        ValueError: A part was collected with different settings.
    """
    found = []
    for candidate in sorted(parts_dir.iterdir()):
        match = _PART_PATTERN.match(candidate.name)
        if match is None or not candidate.is_file():
            continue
        first, last = int(match.group(1)), int(match.group(2))
        try:
            info = inspect_dataset(candidate)
        except ValueError:
            continue
        differences = meta.mismatches(info.meta)
        if differences:
            raise ValueError(
                f"{candidate} was collected with different settings ({'; '.join(differences)}); "
                f"nothing was changed. Rerun with the original settings to resume, or remove "
                f"{parts_dir} to start over"
            )
        if info.num_episodes == last - first + 1 and begin <= first <= last < end:
            found.append(Chunk(first, last, candidate))
    chosen: list[Chunk] = []
    for chunk in sorted(found, key=lambda chunk: (chunk.first, -chunk.last)):
        if not chosen or chunk.first > chosen[-1].last:
            chosen.append(chunk)
    return chosen


def _missing_chunks(
    parts_dir: Path, done: list[Chunk], begin: int, end: int, chunk_size: int
) -> list[Chunk]:
    """Chunks of at most ``chunk_size`` episodes covering ``begin .. end - 1`` minus ``done``."""
    todo = []
    position = begin
    for done_first, done_last in [*((chunk.first, chunk.last) for chunk in done), (end, end)]:
        for first in range(position, done_first, chunk_size):
            last = min(first + chunk_size, done_first) - 1
            todo.append(Chunk(first, last, _part_path(parts_dir, first, last)))
        position = done_last + 1
    return todo


def _refuse_mismatch(path: Path, meta: DatasetMeta, existing: DatasetMeta) -> None:
    differences = meta.mismatches(existing)
    if differences:
        raise ValueError(
            f"{path} already exists and was collected with different settings "
            f"({'; '.join(differences)}); it was left untouched. Use another path, or "
            "delete the file yourself to recollect"
        )


def collect(
    make_env: Callable[[], gym.Env],
    make_policy: Callable[[gym.Env], Policy],
    path: str | os.PathLike[str],
    num_episodes: int,
    episode_steps: int,
    seed: int,
    env_id: str | None,
    env_config: Mapping[str, Any],
    progress: bool = True,
    *,
    workers: int = 1,
    chunk_size: int = 32,
    data_policy: str | None = None,
    action_block: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Collect ``num_episodes`` episodes into the dataset file ``path``; resumable and atomic.

    - ``path`` exists with the same settings and at least ``num_episodes`` episodes: returned
      untouched.
    - ``path`` exists with the same settings and fewer episodes ``n``: episodes ``n .. N-1`` are
      collected and ``path`` is replaced by the extended file once it is complete.
    - ``path`` exists with other settings: ValueError, the file is left untouched.
    - An interrupted run (KeyboardInterrupt included) leaves only complete files: the finished
      parts under ``<path>.parts/`` are reused by the next call with the same settings, and
      every call first deletes leftovers ``path`` already holds (temporary files, parts of a
      run killed after its final merge).

    Args:
        make_env: Creates an env with ``env.unwrapped.get_state()`` and pixel observations
            (uint8 (H, W, 3), or a dict with a ``"pixels"`` entry) or state observations and
            ``env.unwrapped.render_state(state)`` (then only stored frames are rendered: the
            fast choice with ``action_block > 1``).
        make_policy: Creates the policy for an env.
        path: Target HDF5 file.
        num_episodes: Number of episodes wanted in the file.
        episode_steps: Env actions per episode, a multiple of ``action_block`` (rows per
            episode = ``episode_steps / action_block + 1``, fewer if the env terminates early).
        seed: Base seed (>= 0); episode ``i`` depends only on ``(seed, i)``.
        env_id: Environment id stored in the file (``None``: none).
        env_config: Environment arguments stored in the file (JSON-serializable). The action
            bounds and control rate (``render_fps``) stored with them are read from one env
            built with ``make_env`` before collecting.
        progress: Show a tqdm progress bar over episodes.
        workers: Processes collecting chunks in parallel (spawn start method), or with
            ``executor="ray"`` the CPUs of the local Ray cluster started when there is no
            address. With ``workers > 1`` or Ray the factories must be picklable (module-level
            functions or ``functools.partial`` of them). Results do not depend on ``workers``.
        chunk_size: Episodes per part file. Results do not depend on it.
        data_policy: Name of the policy ``make_policy`` makes, stored in the file (a file of
            another recorded policy is refused).
        action_block: Env actions per stored row (``K``): the env steps ``K`` times between
            stored frames and a row's action is those ``K`` actions concatenated, ``(K * A,)``.
            Recorded in the file (a file of another ``K`` is refused); its ``control_hz`` is then
            rows per second, the env's rate over ``K``. A model's ``action_block`` must be a
            multiple of it.
        executor: ``"local"`` (this machine's processes) or ``"ray"``: each chunk is a Ray task
            that returns its episodes, written here as a part file as it arrives (the cluster
            needs no shared file system; the dataset is the same as a local collection's).
        ray_address: Ray cluster address (default ``RAY_ADDRESS``; neither: a local cluster).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: Invalid arguments, an existing file or part collected with different
            settings, or an unreadable existing file (left untouched).
    """
    path = Path(path)
    for name, value, minimum in (
        ("num_episodes", num_episodes, 1),
        ("workers", workers, 1),
        ("chunk_size", chunk_size, 1),
        ("action_block", action_block, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    if isinstance(episode_steps, (int, np.integer)) and episode_steps % action_block:
        raise ValueError(
            f"episode_steps ({episode_steps}) must be a multiple of action_block "
            f"({action_block}): an episode is a whole number of blocks"
        )
    settings = {
        "env_id": env_id, "env_config": env_config, "seed": seed, "episode_steps": episode_steps,
        "data_policy": data_policy, "action_block": int(action_block),
    }  # fmt: skip
    already = 0
    parts_dir = path.with_name(path.name + ".parts")
    if path.exists():
        info = inspect_dataset(path)
        # What is known without an env first: a complete file is returned without building one.
        requested = DatasetMeta(action_low=None, action_high=None, format_version=1, **settings)
        _refuse_mismatch(path, requested, info.meta)
        already = info.num_episodes
    _remove_leftovers(path, parts_dir, already)
    if already >= num_episodes:
        return path
    probe = make_env()
    try:
        low, high = env_action_bounds(probe)
        control_hz = env_control_hz(probe)
    finally:
        probe.close()
    if control_hz is not None:
        control_hz /= action_block  # rows per second
    meta = DatasetMeta(action_low=low, action_high=high, control_hz=control_hz, **settings)
    if already:
        _refuse_mismatch(path, meta, info.meta)

    parts_dir.mkdir(parents=True, exist_ok=True)
    done = _existing_parts(parts_dir, meta, already, num_episodes)
    todo = _missing_chunks(parts_dir, done, already, num_episodes, chunk_size)

    covered = already + sum(chunk.size for chunk in done)
    with tqdm(
        total=num_episodes,
        initial=covered,
        unit="episode",
        desc=f"collect {env_id or path.name}",
        disable=not progress,
    ) as bar:
        work = ChunkWork(make_env, make_policy, meta, _collect_chunk, _chunk_episodes)
        run_chunks(work, todo, bar, executor, workers, ray_address)

    parts = sorted([*done, *todo], key=lambda chunk: chunk.first)
    merge([*([path] if already else []), *(chunk.path for chunk in parts)], path)
    _remove_leftovers(path, parts_dir, num_episodes)
    return path
