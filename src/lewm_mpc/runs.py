"""One loader for a trained run: the model, its dataset, its split and (if built in) its env.

``eval``, ``render`` and ``bench`` all start from :func:`load_run`, so a model is always paired
with the episodes it held out in training. Without an explicit dataset, the one recorded in the
model's :class:`~lewm_mpc.models.run_meta.RunMeta` is used, after checking that it is the very
file the model was trained on (same SHA-256). A model without a dataset at hand (a shipped
``pretrained:<env>`` model, or one that records no dataset) gets a small regenerated one:
fresh seeded episodes of its data policy (:mod:`lewm_mpc.data.regenerated`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.regenerated import regenerated_dataset, regenerated_split
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.models import WorldModel
from lewm_mpc.models.checkpoint import file_sha256
from lewm_mpc.models.pretrained import (
    PREFIX,
    is_pretrained,
    pretrained_root,
    read_card,
    resolve_model_path,
)
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
        regenerated: Whether ``dataset`` holds regenerated episodes rather than the model's
            own dataset (its ``train_ids`` fit probes, its ``val_ids`` give start/goal pairs).
    """

    model: WorldModel
    dataset: EpisodeDataset
    data_path: Path
    train_ids: np.ndarray
    val_ids: np.ndarray
    env_spec: EnvSpec | None
    obs_mode: ObsMode
    regenerated: bool = False

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


def _built_in_env(env_id: str | None) -> EnvSpec | None:
    """The built-in environment of ``env_id``; ``None`` for no id or a robot's own."""
    if env_id is None:
        return None
    try:
        return get_env_spec(env_id)
    except ValueError:  # a robot's own id: no simulator
        return None


def _regenerated_run(
    model: WorldModel, model_path: Path, episodes: int | None, progress: bool
) -> Run:
    """The model with a regenerated dataset of its env, env config and data policy."""
    meta = model.run_meta
    spec = _built_in_env(meta.env_id)
    if spec is None:
        raise ValueError(
            f"the model in {model_path} records no built-in environment "
            f"({meta.env_id or 'no environment id'}), so no episodes can be regenerated for it; "
            "pass its dataset with --data PATH (data_path=...)"
        )
    card = read_card(model_path)
    path = regenerated_dataset(
        spec.name,
        episodes,
        policy=None if card is None else card.data_policy,
        env_config=meta.env_config,
        episode_steps=None if card is None else card.episode_steps,
        action_block=model.action_block if spec.recipe.regenerate_in_blocks else 1,
        progress=progress,
    )
    dataset = EpisodeDataset.load(path)
    train_ids, val_ids = regenerated_split(dataset.num_episodes)
    return Run(model, dataset, path, train_ids, val_ids, spec, meta.obs_mode, regenerated=True)


def load_run(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    regenerate: bool | None = None,
    regenerated_episodes: int | None = None,
    progress: bool = False,
) -> Run:
    """Load a model and its dataset, with the model's train/validation split.

    A model without its dataset at hand, a shipped one (``"pretrained:<env>"``) or one that
    records none, gets a regenerated dataset instead (``Run.regenerated``): fresh episodes of
    its environment, env config and data policy (the one on its card, else the env's default),
    seeded as ``lewm_mpc.evaluation.heldout_pairs`` seeds its episodes, so none is a training
    episode. They are collected once into ``$LEWM_MPC_CACHE/regenerated/`` (default
    ``~/.cache/lewm_mpc/regenerated/``; see :mod:`lewm_mpc.data.regenerated`); later calls with
    the same settings reuse that file, so the episodes are the same. The first three quarters
    are the ``train_ids`` (to fit probes), the last quarter the ``val_ids`` (start/goal pairs,
    probe calibration). A model whose recorded dataset moved or changed still raises (pass
    ``data_path``, or ``regenerate=True``).

    Args:
        model_path: Checkpoint directory, or a shipped model's name ``"pretrained:<env>"``
            (``WorldModel.load``).
        data_path: Dataset file; ``None`` uses the one the model was trained on (which must be
            unchanged: same SHA-256), or a regenerated one (above).
        device: Where the model goes.
        regenerate: ``None``: regenerate when no ``data_path`` is given and the model is
            shipped or records no dataset; ``True``: always (any model of a built-in env, never
            with ``data_path``); ``False``: never.
        regenerated_episodes: Episodes to regenerate, at least 2 (default: the env's
            ``EnvRecipe.regenerated_episodes``: 40, or 10 for the rendering-bound Cube, whose
            episodes are collected at the model's ``action_block``: only kept frames are
            rendered). Seconds for 40 Two-Room episodes, about 10 s for Reacher's.
        progress: Show a progress bar while regenerating.

    Returns:
        The run.

    Raises:
        lewm_mpc.CheckpointError: An unreadable checkpoint.
        FileNotFoundError: No dataset given and the recorded one is missing, or unknown with
            ``regenerate=False``.
        ValueError: The recorded dataset changed, the dataset's env differs from the model's,
            it lacks the model's held-out episodes, or episodes cannot be regenerated (no
            built-in environment, ``regenerate=True`` with ``data_path``).
    """
    if regenerate and data_path is not None:
        raise ValueError("pass either a dataset (data_path) or regenerate=True, not both")
    name, model_path = model_path, resolve_model_path(model_path)
    model = WorldModel.load(model_path, device)
    meta = model.run_meta
    shipped = is_pretrained(name) or model_path.resolve().parent == pretrained_root().resolve()
    if regenerate is None:
        without_dataset = shipped or meta.dataset is None
        regenerate = (
            data_path is None and without_dataset and _built_in_env(meta.env_id) is not None
        )
    if regenerate:
        return _regenerated_run(model, model_path, regenerated_episodes, progress)
    try:
        path = recorded_dataset(meta, model_path) if data_path is None else Path(data_path)
    except FileNotFoundError:
        if not shipped:
            raise
        raise FileNotFoundError(
            f"the shipped model {PREFIX}{model_path.name} comes without its dataset; pass one "
            "with --data PATH (data_path=...), or regenerate one (regenerate=True)"
        ) from None
    dataset = EpisodeDataset.load(path)
    if meta.env_id != dataset.meta.env_id and meta.env_id is not None:
        raise ValueError(
            f"the model in {model_path} was trained on {meta.env_id} data, but {path} holds "
            f"{dataset.meta.env_id or 'data of no environment'}"
        )
    train_ids, val_ids = _split(meta, dataset, path)
    env_spec = _built_in_env(dataset.meta.env_id)
    return Run(model, dataset, path, train_ids, val_ids, env_spec, meta.obs_mode)
