"""Dataset metadata: what a dataset holds (action bounds and block, observations, rate) and how
it was generated (env id and config, seed), as a frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lewm_mpc.validation import check_action_bounds

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

PIXELS_KEY = "pixels"
STATE_KEY = "state"
OBSERVATION_KEYS = (PIXELS_KEY, STATE_KEY)
OBSERVATION_DTYPES = {PIXELS_KEY: ("uint8", 3), STATE_KEY: ("float64", 1)}  # dtype, dims per row


def _normalized_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip of ``config``: tuples become lists, keys become strings."""
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True))
    except (TypeError, ValueError) as error:
        raise ValueError(f"env_config must be JSON-serializable: {error}") from error


def _checked_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ObservationSpec:
    """One observation column of a dataset: its key, per-row shape and dtype.

    Attributes:
        key: Column name (``"pixels"`` or ``"state"``).
        shape: Shape of one row, e.g. ``(64, 64, 3)`` or ``(4,)``.
        dtype: numpy dtype name, e.g. ``"uint8"``.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        if self.key not in OBSERVATION_DTYPES:
            raise ValueError(f"observation key must be one of {OBSERVATION_KEYS}, got {self.key!r}")
        shape = tuple(_checked_int(f"{self.key} shape entry", n, 1) for n in self.shape)
        object.__setattr__(self, "shape", shape)
        expected_dtype, expected_ndim = OBSERVATION_DTYPES[self.key]
        if self.dtype != expected_dtype or len(shape) != expected_ndim:
            raise ValueError(
                f"{self.key} observations must be {expected_dtype} with {expected_ndim} dims per "
                f"row, got {self.dtype} {shape}"
            )
        if self.key == PIXELS_KEY and shape[-1] != 3:
            raise ValueError(f"pixels must be (H, W, 3) per row, got {shape}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"key": self.key, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True, kw_only=True)
class DatasetMeta:
    """What a dataset holds and how it was generated; datasets with matching metas can be merged.

    A user's own robot data needs only the action bounds (plus the episode length, if fixed)::

        DatasetMeta(action_low=(-1.0, -1.0), action_high=(1.0, 1.0), control_hz=10.0)

    Attributes:
        action_low: Lower bound of one env action, length ``A`` (finite, below ``action_high``).
            ``None`` only in files of format version 1, which did not record bounds; see
            :meth:`action_bounds`.
        action_high: Upper bound of one env action, length ``A``.
        action_block: Env actions per dataset row: a row's action holds ``action_block``
            consecutive env actions, concatenated (width ``action_block * A``), and consecutive
            rows are ``action_block`` env steps apart. 1 when rows are env steps (collected data);
            a model's ``action_block`` must be a multiple of it.
        env_id: Id of the environment that generated the data (e.g. ``"lewm_mpc/TwoRoom-v0"``),
            or any string naming your robot (``"my_lab/PointBot-v0"``); ``None`` when there is
            none. Only a built-in id lets closed-loop evaluation rebuild the env.
        env_config: Environment constructor arguments; stored as JSON, so it is normalized by a
            JSON round trip (tuples become lists).
        seed: Base seed of the collection; episode ``i`` is seeded from ``(seed, i)``.
        episode_steps: Nominal number of actions per episode (rows per episode minus one);
            ``None`` when episodes have no fixed length.
        control_hz: Dataset rows per second (the control rate), if known.
        data_policy: Name of the policy that generated the data (e.g. ``"scripted"``), if known.
        observations: The observation columns (key, per-row shape, dtype). Leave ``None`` when
            writing: the writer takes them from the episodes (and checks them when given). Set on
            every meta read from a file. Not compared by ``==`` (it describes the data, not how it
            was generated).
        format_version: Version of the file format the meta was read from or will be written as.
    """

    action_low: tuple[float, ...] | None
    action_high: tuple[float, ...] | None
    action_block: int = 1
    env_id: str | None = None
    env_config: dict[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    episode_steps: int | None = None
    control_hz: float | None = None
    data_policy: str | None = None
    observations: tuple[ObservationSpec, ...] | None = field(
        default=None, compare=False, hash=False
    )
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("format_version", _checked_int("format_version", self.format_version, 1))
        if self.format_version > FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is newer than this lewm_mpc's "
                f"{FORMAT_VERSION}"
            )
        if self.env_id is not None and (not isinstance(self.env_id, str) or not self.env_id):
            raise ValueError(f"env_id must be a non-empty string or None, got {self.env_id!r}")
        if not isinstance(self.env_config, Mapping):
            raise ValueError(f"env_config must be a mapping, got {type(self.env_config).__name__}")
        set_("env_config", _normalized_config(self.env_config))
        set_("seed", _checked_int("seed", self.seed, 0))
        set_("action_block", _checked_int("action_block", self.action_block, 1))
        if self.episode_steps is not None:
            set_("episode_steps", _checked_int("episode_steps", self.episode_steps, 1))
        if self.control_hz is not None:
            rate = self.control_hz
            if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)):
                raise ValueError(f"control_hz must be a number or None, got {rate!r}")
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"control_hz must be finite and > 0, got {rate!r}")
            set_("control_hz", float(rate))
        if self.data_policy is not None and (
            not isinstance(self.data_policy, str) or not self.data_policy
        ):
            raise ValueError(
                f"data_policy must be a non-empty string or None, got {self.data_policy!r}"
            )
        self._check_bounds()
        if self.observations is not None:
            observations = tuple(self.observations)
            if not all(isinstance(entry, ObservationSpec) for entry in observations):
                raise ValueError("observations must be ObservationSpec entries")
            keys = [entry.key for entry in observations]
            if sorted(keys) != sorted(OBSERVATION_KEYS):
                raise ValueError(f"observations must describe {OBSERVATION_KEYS}, got {keys}")
            set_("observations", tuple(sorted(observations, key=lambda entry: entry.key)))

    def _check_bounds(self) -> None:
        if self.action_low is None and self.action_high is None:
            if self.format_version >= 2:
                raise ValueError(
                    "action_low and action_high are required: give the bounds of one env action, "
                    "e.g. action_low=(-1.0, -1.0), action_high=(1.0, 1.0)"
                )
            return
        if self.action_low is None or self.action_high is None:
            raise ValueError("give both action_low and action_high, or neither")
        low, high = check_action_bounds(self.action_low, self.action_high)
        object.__setattr__(self, "action_low", tuple(low.tolist()))
        object.__setattr__(self, "action_high", tuple(high.tolist()))

    @property
    def action_dim(self) -> int | None:
        """``A``, the size of one env action (``None`` when no bounds are recorded)."""
        return None if self.action_low is None else len(self.action_low)

    def observation(self, key: str) -> ObservationSpec:
        """The observation column ``key`` (``"pixels"`` or ``"state"``).

        Raises:
            ValueError: The meta does not describe its observations (not read from a file).
        """
        for entry in self.observations or ():
            if entry.key == key:
                return entry
        raise ValueError(f"this dataset meta does not describe a {key!r} observation")

    def action_bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(low, high)`` of one env action.

        Files of format version 1 did not record bounds: for those (only), the bounds are read
        from the built-in environment named by ``env_id`` (which is built once, on first use).

        Raises:
            ValueError: No bounds recorded and none can be found.
        """
        if self.action_low is not None and self.action_high is not None:
            return self.action_low, self.action_high
        if self.env_id is None:
            raise ValueError(
                "this dataset records no action bounds and names no environment; rewrite it with "
                "DatasetMeta(action_low=..., action_high=...)"
            )
        return _builtin_action_bounds(self.env_id, json.dumps(self.env_config, sort_keys=True))

    def mismatches(self, other: DatasetMeta) -> tuple[str, ...]:
        """Human-readable differences from ``other`` (empty when the two match).

        Bounds, control rate and data policy are compared only when both metas record them (files
        of format version 1 do not), and the format version is not compared: such files merge with
        new ones into a file of the current version.

        Args:
            other: The meta to compare with.

        Returns:
            One ``"field: mine != theirs"`` string per differing field.
        """
        names = ["env_id", "env_config", "seed", "episode_steps", "action_block"]
        for name in ("action_low", "action_high", "control_hz", "data_policy"):
            if getattr(self, name) is not None and getattr(other, name) is not None:
                names.append(name)
        compared = {"env_config": (self.complete_env_config(), other.complete_env_config())}
        return tuple(
            f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in names
            if operator.ne(*compared.get(name, (getattr(self, name), getattr(other, name))))
        )

    def complete_env_config(self) -> dict[str, Any]:
        """``env_config`` with the fields it does not record at their defaults, for a built-in
        env (a field added to an env's config since a file was written takes its default, which
        is what that file was collected with); otherwise ``env_config`` as recorded."""
        defaults = _builtin_config_defaults(self.env_id) if self.env_id is not None else "{}"
        return {**json.loads(defaults), **self.env_config}


@functools.lru_cache(maxsize=16)
def _builtin_config_defaults(env_id: str) -> str:
    """The default config of a built-in env as normalized JSON ("{}": not a built-in env, or its
    extra is not installed)."""
    from lewm_mpc.envs import get_env_spec  # lazy: the envs import this module

    try:
        config = get_env_spec(env_id).config()
    except (ValueError, ImportError):
        return "{}"
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
    return json.dumps(_normalized_config(fields), sort_keys=True)


@functools.lru_cache(maxsize=8)
def _builtin_action_bounds(
    env_id: str, env_config_json: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Action bounds of a built-in env (for format-version-1 files, which lack them)."""
    from lewm_mpc.envs import get_env_spec  # lazy: only old files need an env

    try:
        spec = get_env_spec(env_id)
    except ValueError:
        raise ValueError(
            f"this dataset (format version 1) records no action bounds and {env_id!r} is not a "
            "built-in environment; rewrite it with DatasetMeta(action_low=..., action_high=...)"
        ) from None
    env = spec.make(obs_mode="state", env_config=json.loads(env_config_json))
    try:
        space = env.action_space
        return tuple(map(float, space.low)), tuple(map(float, space.high))
    finally:
        env.close()


def observations_of(image_shape: tuple[int, ...], state_dim: int) -> tuple[ObservationSpec, ...]:
    """The observation columns of a dataset with these pixel and state shapes."""
    return (
        ObservationSpec(PIXELS_KEY, tuple(int(n) for n in image_shape), "uint8"),
        ObservationSpec(STATE_KEY, (int(state_dim),), "float64"),
    )
