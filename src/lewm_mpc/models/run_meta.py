"""What a checkpoint knows about its run: environment, dataset, split, training settings.

:class:`RunMeta` is stored as the ``run_meta`` entry of a checkpoint's ``config.json``.
Checkpoints of format version 1 kept free-form ``extra`` metadata instead;
:meth:`RunMeta.from_legacy` converts it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lewm_mpc.types import OBS_MODES, ObsMode

RUN_META_VERSION = 1


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _float(name: str, value: Any, minimum: float, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {relation} {minimum}, got {value!r}")
    return value


def dataclass_from_json(cls: type, data: Any, what: str) -> Any:
    """``cls(**data)`` for a JSON object (``what`` names it in errors); unknown or missing keys
    -> ValueError."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {data!r}")
    names = {entry.name for entry in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}")
    try:
        return cls(**data)
    except TypeError as error:
        raise ValueError(f"{what}: {error}") from None


def episode_ids_sha256(episode_ids: Sequence[int]) -> str:
    """Hex SHA-256 of a sorted list of episode ids (as JSON), to compare splits cheaply."""
    text = json.dumps(sorted(int(episode) for episode in episode_ids))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DatasetRef:
    """The dataset a model was trained on.

    Attributes:
        path: The path as given to training (relative paths are relative to where it ran).
        sha256: Hex SHA-256 of the file's bytes at training time.
    """

    path: str
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"dataset path must be a non-empty string, got {self.path!r}")
        sha = self.sha256
        if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
            raise ValueError(f"dataset sha256 must be 64 lowercase hex digits, got {sha!r}")


@dataclass(frozen=True)
class SplitMeta:
    """The train/validation split by episode a model was trained with.

    Attributes:
        val_fraction: Share of episodes held out, in (0, 1).
        seed: Seed of the split's permutation (``EpisodeDataset.split``).
        val_episodes: The held-out episode ids, sorted; ``None`` for checkpoints that did not
            record them (the split is then recomputed from ``val_fraction`` and ``seed``).
    """

    val_fraction: float
    seed: int
    val_episodes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        fraction = _float("val_fraction", self.val_fraction, 0.0, strict=True)
        if fraction >= 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
        object.__setattr__(self, "val_fraction", fraction)
        _int("split seed", self.seed, 0)
        if self.val_episodes is not None:
            if isinstance(self.val_episodes, (str, bytes)):
                raise ValueError("val_episodes must be a sequence of episode ids")
            ids = tuple(_int("validation episode id", e, 0) for e in self.val_episodes)
            if not ids or list(ids) != sorted(set(ids)):
                raise ValueError("val_episodes must be non-empty, sorted and without duplicates")
            object.__setattr__(self, "val_episodes", ids)

    @property
    def val_episodes_sha256(self) -> str | None:
        """SHA-256 of the held-out ids (``None`` when they are not recorded)."""
        return None if self.val_episodes is None else episode_ids_sha256(self.val_episodes)


@dataclass(frozen=True)
class TrainingMeta:
    """A summary of the optimization settings (the full ``TrainConfig`` lives in the run's
    resume state).

    Attributes:
        steps: Optimizer steps planned.
        batch_size: Windows per step.
        num_frames: Frames per window.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        sigreg_weight: SIGReg weight lambda.
        seed: Training seed.
        state_loss_weight: Weight of the auxiliary state loss (0: none).
        augment: Trained on windows transformed by the env's scene symmetries.
    """

    steps: int
    batch_size: int
    num_frames: int
    lr: float
    weight_decay: float
    sigreg_weight: float
    seed: int
    state_loss_weight: float = 0.0
    augment: bool = False

    def __post_init__(self) -> None:
        for name, minimum in (("steps", 1), ("batch_size", 1), ("num_frames", 1), ("seed", 0)):
            _int(name, getattr(self, name), minimum)
        object.__setattr__(self, "lr", _float("lr", self.lr, 0.0, strict=True))
        for name in ("weight_decay", "sigreg_weight", "state_loss_weight"):
            object.__setattr__(self, name, _float(name, getattr(self, name), 0.0))
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be true or false, got {self.augment!r}")

    @classmethod
    def from_config(cls, config: Any) -> TrainingMeta:
        """The summary of a ``TrainConfig`` (or any object with the same attributes)."""
        return cls(**{entry.name: getattr(config, entry.name) for entry in dataclasses.fields(cls)})


@dataclass(frozen=True)
class RunMeta:
    """Typed metadata of a world-model checkpoint.

    Attributes:
        obs_mode: ``"pixels"`` or ``"state"``: what the model encodes.
        env_id: The dataset's environment id (``None``: none, e.g. a robot's own data).
        env_config: That environment's constructor arguments (JSON object).
        dataset: The training dataset (``None``: unknown, e.g. an untrained model).
        split: The train/validation split (``None``: unknown).
        training: The optimization settings (``None``: not trained by ``lewm_mpc.training``).
        step: Optimizer steps completed.
        train_seconds: Training time, summed over every resumed part of the run.
        format_version: Version of this record.
    """

    obs_mode: ObsMode
    env_id: str | None = None
    env_config: dict[str, Any] = field(default_factory=dict, hash=False)
    dataset: DatasetRef | None = None
    split: SplitMeta | None = None
    training: TrainingMeta | None = None
    step: int = 0
    train_seconds: float = 0.0
    format_version: int = RUN_META_VERSION

    def __post_init__(self) -> None:
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.env_id is not None and (not isinstance(self.env_id, str) or not self.env_id):
            raise ValueError(f"env_id must be a non-empty string or None, got {self.env_id!r}")
        if not isinstance(self.env_config, Mapping):
            raise ValueError(f"env_config must be a JSON object, got {self.env_config!r}")
        try:
            config = json.loads(json.dumps(dict(self.env_config), sort_keys=True))
        except (TypeError, ValueError) as error:
            raise ValueError(f"env_config must be JSON-serializable: {error}") from None
        object.__setattr__(self, "env_config", config)
        nested = {"dataset": DatasetRef, "split": SplitMeta, "training": TrainingMeta}
        for name, nested_cls in nested.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, nested_cls):
                raise ValueError(f"{name} must be a {nested_cls.__name__} or None, got {value!r}")
        _int("step", self.step, 0)
        object.__setattr__(self, "train_seconds", _float("train_seconds", self.train_seconds, 0))
        if self.format_version != RUN_META_VERSION:
            raise ValueError(
                f"run_meta format_version {self.format_version!r}; this lewm_mpc reads version "
                f"{RUN_META_VERSION}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        data = dataclasses.asdict(self)
        if self.split is not None and self.split.val_episodes is not None:
            data["split"]["val_episodes"] = list(self.split.val_episodes)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> RunMeta:
        """Parse and validate a dict written by :meth:`to_dict`.

        Raises:
            ValueError: A missing, unknown or invalid entry.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"run_meta must be a JSON object, got {data!r}")
        values = dict(data)
        nested = {"dataset": DatasetRef, "split": SplitMeta, "training": TrainingMeta}
        for name, nested_cls in nested.items():
            if values.get(name) is not None:
                values[name] = dataclass_from_json(nested_cls, values[name], name)
        return dataclass_from_json(cls, values, "run_meta")

    @classmethod
    def from_legacy(cls, extra: Mapping[str, Any], obs_mode: ObsMode) -> RunMeta:
        """Convert the free-form ``extra`` of a version-1 checkpoint.

        Version-1 training wrote ``env_id``, ``env_config``, ``obs_key``, ``train_config`` (the
        whole ``TrainConfig`` as a dict), ``step`` and ``train_seconds``; any of them may be
        missing from hand-saved models. The split is recorded without its episode ids.

        Args:
            extra: The ``extra`` object of the old ``config.json``.
            obs_mode: The model's observation kind (from its architecture).

        Raises:
            ValueError: An entry of the wrong type.
        """
        train_config = extra.get("train_config")
        split = training = None
        if isinstance(train_config, Mapping):
            split = SplitMeta(
                val_fraction=train_config.get("val_fraction", 0.1),
                seed=train_config.get("seed", 0),
            )
            fields = dataclasses.fields(TrainingMeta)
            required = [entry.name for entry in fields if entry.default is dataclasses.MISSING]
            if all(name in train_config for name in required):
                given = [entry.name for entry in fields if entry.name in train_config]
                training = TrainingMeta(**{name: train_config[name] for name in given})
        return cls(
            obs_mode=obs_mode,
            env_id=extra.get("env_id"),
            env_config=extra.get("env_config") or {},
            split=split,
            training=training,
            step=extra.get("step", 0),
            train_seconds=extra.get("train_seconds", 0.0),
        )
