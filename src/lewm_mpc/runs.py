"""One loader for a trained run: the model, its dataset, its split and (if built in) its env.

``eval``, ``render`` and ``bench`` all start from :func:`load_run`, so a model is always paired
with the episodes it held out in training. Without an explicit dataset, the one recorded in the
model's :class:`~lewm_mpc.models.run_meta.RunMeta` is used, after checking that it is the very
file the model was trained on (same SHA-256).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.models import WorldModel
from lewm_mpc.models.checkpoint import file_sha256
from lewm_mpc.models.pretrained import PREFIX, is_pretrained, pretrained_root, resolve_model_path
from lewm_mpc.models.run_meta import RunMeta
from lewm_mpc.types import ObsMode

DEFAULT_SPLIT = (0.1, 0)  # (val_fraction, seed) of TrainConfig, for models that record none


@dataclass(frozen=True)
class Run:
    """A trained model with its data.

    Attributes:
        model: The world model (eval mode).
        dataset: Its dataset, in memory.
        data_path: Where the dataset was read from.
        train_ids: Sorted ids of the episodes the model may have trained on (all but the
            held-out ones).
        val_ids: Sorted ids of the held-out (validation) episodes.
        env_spec: The built-in environment of the data, or ``None`` (a robot's own data).
        obs_mode: ``"pixels"`` or ``"state"``: what the model encodes.
    """

    model: WorldModel
    dataset: EpisodeDataset
    data_path: Path
    train_ids: np.ndarray
    val_ids: np.ndarray
    env_spec: EnvSpec | None
    obs_mode: ObsMode

    @property
    def meta(self) -> RunMeta:
        """The model's run metadata."""
        return self.model.run_meta

    def require_env(self, what: str) -> EnvSpec:
        """The env spec, or a ValueError saying that ``what`` needs a built-in environment."""
        if self.env_spec is None:
            env = self.dataset.meta.env_id or "no environment id"
            raise ValueError(
                f"{what} needs a simulator, but {self.data_path} holds data of {env} (not a "
                "built-in environment); evaluate it with `lewm-mpc eval --offline`"
            )
        return self.env_spec


def recorded_dataset(meta: RunMeta, model_path: Path) -> Path:
    """The dataset file recorded in ``meta``, checked to be unchanged since training.

    Raises:
        FileNotFoundError: The model records no dataset, or the file is gone.
        ValueError: The file's SHA-256 differs from the recorded one.
    """
    if meta.dataset is None:
        raise FileNotFoundError(
            f"the model in {model_path} does not record its dataset (trained by an older "
            "lewm_mpc); pass it explicitly with --data PATH (data_path=...)"
        )
    path = Path(meta.dataset.path)
    expected = meta.dataset.sha256
    if not path.is_file():
        raise FileNotFoundError(
            f"the model in {model_path} was trained on {path} (sha256 {expected[:12]}…), which "
            f"does not exist (from {Path.cwd()}); pass the dataset with --data PATH "
            "(data_path=...)"
        )
    found = file_sha256(path)
    if found != expected:
        raise ValueError(
            f"{path} has changed since the model in {model_path} was trained on it (sha256 "
            f"expected {expected[:12]}…, found {found[:12]}…); pass --data {path} (data_path=...) "
            "to use it anyway, or point --data at the original file"
        )
    return path


def _split(
    meta: RunMeta, dataset: EpisodeDataset, data_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, val ids): the recorded held-out ids, else the recorded (or default) split."""
    split = meta.split
    if split is None or split.val_episodes is None:
        fraction, seed = DEFAULT_SPLIT if split is None else (split.val_fraction, split.seed)
        return dataset.split(fraction, seed=seed)
    val_ids = np.asarray(split.val_episodes, dtype=np.int64)
    try:
        dataset.episode_positions(val_ids)
    except KeyError as error:
        raise ValueError(
            f"{data_path} lacks episodes the model held out in training ({error.args[0]}); "
            "it is not the model's dataset"
        ) from None
    train_ids = np.setdiff1d(dataset.episode_ids, val_ids)
    return train_ids, val_ids


def load_run(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Run:
    """Load a model and its dataset, with the model's train/validation split.

    Args:
        model_path: Checkpoint directory, or a shipped model's name ``"pretrained:<env>"``
            (``WorldModel.load``).
        data_path: Dataset file; ``None`` uses the one the model was trained on (which must be
            unchanged: same SHA-256). Shipped models come without their dataset: pass it, or
            evaluate on regenerated episodes (``lewm_mpc.evaluation.heldout_pairs``).
        device: Where the model goes.

    Returns:
        The run.

    Raises:
        lewm_mpc.CheckpointError: An unreadable checkpoint.
        FileNotFoundError: No dataset given and the recorded one is missing or unknown.
        ValueError: The recorded dataset changed, the dataset's env differs from the model's,
            or it lacks the model's held-out episodes.
    """
    name, model_path = model_path, resolve_model_path(model_path)
    model = WorldModel.load(model_path, device)
    meta = model.run_meta
    try:
        path = recorded_dataset(meta, model_path) if data_path is None else Path(data_path)
    except FileNotFoundError:
        shipped = model_path.resolve().parent == pretrained_root().resolve()
        if not (is_pretrained(name) or shipped):
            raise
        raise FileNotFoundError(
            f"the shipped model {PREFIX}{model_path.name} comes without its dataset; pass one "
            "with --data PATH (data_path=...); closed-loop `lewm-mpc eval` needs none (it "
            "regenerates held-out episodes: lewm_mpc.evaluation.heldout_pairs)"
        ) from None
    dataset = EpisodeDataset.load(path)
    if meta.env_id != dataset.meta.env_id and meta.env_id is not None:
        raise ValueError(
            f"the model in {model_path} was trained on {meta.env_id} data, but {path} holds "
            f"{dataset.meta.env_id or 'data of no environment'}"
        )
    train_ids, val_ids = _split(meta, dataset, path)
    env_spec = None
    if dataset.meta.env_id is not None:
        try:
            env_spec = get_env_spec(dataset.meta.env_id)
        except ValueError:  # a robot's own id: no simulator
            env_spec = None
    return Run(model, dataset, path, train_ids, val_ids, env_spec, meta.obs_mode)
