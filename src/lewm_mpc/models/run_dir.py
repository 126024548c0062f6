"""Checkpoints of a training run, each one atomic unit: ``<run>/checkpoints/step-<N>/``.

A checkpoint folder holds the world model (``model.safetensors`` + ``config.json``) and the
resume state (``train_state.json`` + ``train_state.safetensors``). It is written whole into a
hidden staging folder (``checkpoints/.staging-<N>-<random>``), every file flushed to disk, and
committed by one ``rename`` to ``step-<N>``: a kill at any instant leaves either the previous
checkpoints only, or the new one complete. Staging leftovers are removed when the next training
run starts; older checkpoints are pruned after each commit (the newest ``keep`` stay), each
renamed back into a staging name before it is deleted.

``WorldModel.load(run_dir)`` and resuming pick the newest committed checkpoint; a folder that
holds ``config.json`` itself (a plain checkpoint: ``WorldModel.save``, ``pretrained:<env>``, a
``step-<N>`` folder, or a run written before this layout) loads as it is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lewm_mpc.atomic import default_permissions

CHECKPOINTS = "checkpoints"
_STEP = re.compile(r"^step-(\d+)$")
_STAGING_PREFIX = ".staging-"
_CONFIG_FILE = "config.json"  # the model config, written last inside a checkpoint


def step_name(step: int) -> str:
    """Folder name of the checkpoint at ``step`` (zero-padded: names sort by step)."""
    return f"step-{step:09d}"


def committed_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every committed checkpoint of ``run_dir``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def checkpoint_dir(path: str | Path) -> Path | None:
    """The folder to load a model from: the newest committed checkpoint of a run folder, or
    ``path`` itself when it is a plain checkpoint; ``None`` if it is neither."""
    path = Path(path)
    committed = committed_checkpoints(path)
    if committed:
        return committed[-1][1]
    return path if (path / _CONFIG_FILE).is_file() else None


def remove_staging(run_dir: str | Path) -> None:
    """Delete staging folders left by a run killed while writing a checkpoint."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(_STAGING_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_checkpoint(run_dir: str | Path, step: int) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it becomes ``step-<N>``.

    Write every file of the checkpoint into the yielded folder (flushed to disk, e.g. with
    :func:`lewm_mpc.atomic.atomic_write`). On an exception nothing is committed and the
    staging folder is removed. A checkpoint already committed at ``step`` is kept as it is
    (it holds the same step).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{step}-", dir=root))
    default_permissions(staging)  # mkdtemp makes it 0700
    try:
        yield staging
        if not final.exists():
            _fsync_dir(staging)
            os.rename(staging, final)  # the commit
            _fsync_dir(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` committed checkpoints. Each is first renamed into a
    staging name, so a kill while deleting never leaves a partial ``step-<N>`` folder."""
    committed = committed_checkpoints(run_dir)
    for step, folder in committed[: max(0, len(committed) - keep)]:
        doomed = folder.with_name(f"{_STAGING_PREFIX}pruned-{step}")
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
