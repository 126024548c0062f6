"""World models shipped inside the package: ``WorldModel.load("pretrained:<env>")``.

A shipped model is a checkpoint folder ``lewm_mpc/pretrained/<env>/`` (``model.safetensors``
with float16 parameters, loaded back as float32, and ``config.json`` with its SHA-256) plus a
``card.json`` (:class:`ModelCard`) recording how it was made: data policy, episodes, training
steps, the dataset's SHA-256 and the success rate measured on held-out pairs.
:func:`export_pretrained` writes all three.

``LEWM_MPC_PRETRAINED_DIR`` points the lookup at another folder of the same layout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, read_json
from lewm_mpc.models.run_meta import dataclass_from_json

if TYPE_CHECKING:
    from lewm_mpc.models.jepa import WorldModel

PREFIX = "pretrained:"
ROOT_VARIABLE = "LEWM_MPC_PRETRAINED_DIR"
CARD_FILE = "card.json"
CARD_VERSION = 1
EXPORT_DTYPE = torch.float16  # halves the files: a CPU model ships in about 2 MB


def pretrained_root() -> Path:
    """The folder holding shipped models: ``$LEWM_MPC_PRETRAINED_DIR`` if set, else the
    package's ``lewm_mpc/pretrained``."""
    override = os.environ.get(ROOT_VARIABLE)
    return Path(override) if override else Path(__file__).resolve().parents[1] / "pretrained"


def pretrained_names(root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """Sorted env names with a shipped model (a folder holding weights and config)."""
    folder = Path(root) if root is not None else pretrained_root()
    if not folder.is_dir():
        return ()
    return tuple(
        sorted(
            entry.name
            for entry in folder.iterdir()
            if (entry / CONFIG_FILE).is_file() and (entry / WEIGHTS_FILE).is_file()
        )
    )


def is_pretrained(path_or_name: str | os.PathLike[str]) -> bool:
    """Whether ``path_or_name`` names a shipped model (``"pretrained:<env>"``)."""
    return os.fspath(path_or_name).startswith(PREFIX)


def resolve_model_path(
    path_or_name: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """The checkpoint folder of a path, or of a shipped model named ``"pretrained:<env>"``.

    Args:
        path_or_name: A checkpoint directory, or ``"pretrained:<env>"`` (any spelling
            ``get_env_spec`` accepts, e.g. ``"pretrained:two-room"``).
        root: Folder of shipped models (default: :func:`pretrained_root`).

    Returns:
        The folder (a plain path is returned unchanged).

    Raises:
        ValueError: An unknown name, or a known environment with no shipped model; the message
            lists the shipped names.
    """
    text = os.fspath(path_or_name)
    if not text.startswith(PREFIX):
        return Path(text)
    from lewm_mpc.envs import get_env_spec

    folder = Path(root) if root is not None else pretrained_root()
    name = text[len(PREFIX) :]
    shipped = ", ".join(f"{PREFIX}{entry}" for entry in pretrained_names(folder)) or "none"
    try:
        env = get_env_spec(name).name
    except ValueError:
        raise ValueError(f"unknown pretrained model {text!r}; shipped: {shipped}") from None
    path = folder / env
    if not (path / CONFIG_FILE).is_file():
        raise ValueError(
            f"no pretrained model is shipped for {env} yet (shipped: {shipped}); train one with "
            f"`lewm-mpc collect {env}` and `lewm-mpc train`"
        )
    return path


@dataclass(frozen=True)
class ModelCard:
    """How a shipped model was made (``card.json`` beside its checkpoint).

    Attributes:
        env: Registry name of the environment.
        data_policy: The data policy that generated the training data (one of
            ``spec.expert_names``); held-out pairs are regenerated with it.
        episodes: Episodes collected.
        episode_steps: Actions per collected episode.
        train_steps: Optimizer steps of training.
        dataset_sha256: SHA-256 of the training dataset file.
        success_rate: Success measured on held-out pairs (``evaluation.heldout_pairs``) with
            the env's reference planner budget; ``None`` if not measured.
        eval_pairs: Pairs that success was measured on.
        format_version: Version of this record.
        collect_seed: Base seed of the collection (``None``: not recorded).
        action_block: Env actions per stored row at collection (``lewm-mpc collect
            --action-block``).
    """

    env: str
    data_policy: str
    episodes: int
    episode_steps: int
    train_steps: int
    dataset_sha256: str
    success_rate: float | None = None
    eval_pairs: int = 0
    format_version: int = CARD_VERSION
    collect_seed: int | None = None
    action_block: int = 1

    def __post_init__(self) -> None:
        for name in ("env", "data_policy"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"card {name} must be a non-empty string, got {self!r}")
        checked = [("episodes", 1), ("episode_steps", 1), ("train_steps", 1), ("action_block", 1)]
        if self.collect_seed is not None:
            checked.append(("collect_seed", 0))
        for name, minimum in checked:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"card {name} must be an int >= {minimum}, got {value!r}")
        sha = self.dataset_sha256
        if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
            raise ValueError(f"card dataset_sha256 must be 64 lowercase hex digits, got {sha!r}")
        rate = self.success_rate
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1
        ):
            raise ValueError(f"card success_rate must be in [0, 1] or None, got {rate!r}")
        pairs = self.eval_pairs
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 0:
            raise ValueError(f"card eval_pairs must be an int >= 0, got {pairs!r}")
        if rate is not None and (pairs < 1 or not math.isclose(rate * pairs, round(rate * pairs))):
            raise ValueError(f"card success_rate {rate} is not a share of {pairs} eval_pairs")
        if self.format_version != CARD_VERSION:
            raise ValueError(
                f"card format_version {self.format_version!r}; this lewm_mpc reads {CARD_VERSION}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        """Parse and validate a dict written by :meth:`to_dict` (ValueError if invalid)."""
        return dataclass_from_json(cls, data, "model card")


def read_card(path_or_name: str | os.PathLike[str]) -> ModelCard | None:
    """The card of a checkpoint folder or shipped model; ``None`` if it has none.

    Raises:
        CheckpointError: An unreadable or invalid ``card.json``.
    """
    path = resolve_model_path(path_or_name) / CARD_FILE
    if not path.is_file():
        return None
    try:
        return ModelCard.from_dict(read_json(path, "model card"))
    except ValueError as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path} holds an invalid model card: {error}") from None


def export_pretrained(
    model: WorldModel, card: ModelCard, root: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``model`` as the shipped model of ``card.env``: float16 weights, config, card.

    Args:
        model: A trained world model whose ``run_meta`` records the environment.
        card: How it was made (its ``dataset_sha256`` must match the dataset the model records,
            if it records one).
        root: Folder of shipped models (default: :func:`pretrained_root`, the package's).

    Returns:
        The model's folder, ``root/<env>``; ``WorldModel.load("pretrained:<env>")`` loads it.

    Raises:
        ValueError: The model's environment or dataset differs from the card's, or the card
            names an unknown data policy.
    """
    from lewm_mpc.envs import get_env_spec

    spec = get_env_spec(card.env)
    card = dataclasses.replace(card, env=spec.name)
    meta = model.run_meta
    if meta.env_id != spec.gym_id:
        raise ValueError(
            f"the model records env {meta.env_id!r}, the card {spec.gym_id!r}; set "
            "model.run_meta = dataclasses.replace(model.run_meta, env_id=...) for a model "
            "trained elsewhere"
        )
    if card.data_policy not in spec.expert_names:
        raise ValueError(
            f"{spec.name} has no data policy {card.data_policy!r}; known: {spec.expert_names}"
        )
    if meta.dataset is not None and meta.dataset.sha256 != card.dataset_sha256:
        raise ValueError(
            f"the card's dataset_sha256 {card.dataset_sha256[:12]}… differs from the dataset the "
            f"model was trained on ({meta.dataset.sha256[:12]}…)"
        )
    folder = (Path(root) if root is not None else pretrained_root()) / spec.name
    model.save(folder, dtype=EXPORT_DTYPE)
    write_text_atomic(folder / CARD_FILE, json.dumps(card.to_dict(), indent=2, sort_keys=True))
    return folder
