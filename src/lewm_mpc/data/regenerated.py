"""Regenerated datasets: fresh seeded episodes of a data policy, for a model without its data.

A shipped model (``pretrained:<env>``) comes without the dataset it was trained on, yet probes,
keep-out calibration and held-out start/goal pairs need episodes of that distribution. They are
collected afresh with :func:`~lewm_mpc.data.collection.collect_dataset` from the model's env,
env config and data policy, seeded as ``evaluation.heldout_pairs`` seeds its episodes (base
``HELDOUT_SEED_BASE + seed``, far above any collection seed: none is a training episode), into
a cache file that later calls reuse. The file name holds a hash of every setting, so the same
settings always give the same file, and the same episodes.

The cache folder is ``$LEWM_MPC_CACHE/regenerated`` if that variable is set, else
``$XDG_CACHE_HOME/lewm_mpc/regenerated`` (``~/.cache/lewm_mpc/regenerated``). Deleting it is
always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.envs import get_env_spec

CACHE_VARIABLE = "LEWM_MPC_CACHE"
# Base seed of regenerated held-out episodes; collections are seeded far below it, so these
# episodes are none of the training data.
HELDOUT_SEED_BASE = 10_000_000
VAL_SHARE = 4  # one episode in VAL_SHARE is held out for pairs, the rest fit probes


def cache_root() -> Path:
    """The cache folder of lewm_mpc: ``$LEWM_MPC_CACHE``, else ``$XDG_CACHE_HOME/lewm_mpc``,
    else ``~/.cache/lewm_mpc``."""
    override = os.environ.get(CACHE_VARIABLE)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lewm_mpc"


def regenerated_split(num_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, val ids) of a regenerated dataset: the last quarter (at least one episode)
    is held out for start/goal pairs, the others fit probes.

    Raises:
        ValueError: Fewer than 2 episodes.
    """
    if num_episodes < 2:
        raise ValueError(f"a regenerated dataset needs >= 2 episodes, got {num_episodes}")
    held_out = max(1, num_episodes // VAL_SHARE)
    ids = np.arange(num_episodes, dtype=np.int64)
    return ids[:-held_out], ids[-held_out:]


def regenerated_dataset(
    env: str,
    num_episodes: int | None = None,
    *,
    policy: str | None = None,
    env_config: Mapping[str, Any] | None = None,
    episode_steps: int | None = None,
    action_block: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """The cached file of ``num_episodes`` regenerated episodes; collects it if absent.

    Episode ``i`` is the episode ``heldout_pairs(spec, ..., seed, policy, env_config)``
    regenerates as its ``i``-th, rolled out to ``episode_steps`` (env reset with
    ``episode_seed(HELDOUT_SEED_BASE + seed, i)``, the policy with
    ``default_rng([HELDOUT_SEED_BASE + seed, i])``). Collection is atomic: an interrupted call
    leaves complete parts that the next one resumes from, never a partial file.

    Args:
        env: Registry name or gym id.
        num_episodes: Episodes (default: the env's ``recipe.regenerated_episodes``).
        policy: Data policy (default: the env's first).
        env_config: Env config fields (e.g. a model's ``run_meta.env_config``).
        episode_steps: Actions per episode (default: the env's collection length, within
            its time limit).
        action_block: Env actions per stored row (a model's ``action_block`` must be a
            multiple of it); ``> 1`` renders only the rows kept.
        seed: Offset from ``HELDOUT_SEED_BASE`` (as ``heldout_pairs``'s ``seed``).
        progress: Show a progress bar while collecting.

    Returns:
        ``<cache>/regenerated/<env>-<policy>-<hash>.h5``.

    Raises:
        ValueError: Invalid arguments (unknown env or policy, too few episodes, ...).
    """
    from lewm_mpc.data.collection import collect_dataset

    spec = get_env_spec(env)
    episodes = spec.recipe.regenerated_episodes if num_episodes is None else num_episodes
    regenerated_split(episodes)  # a clear error for too few
    policy = spec.expert_names[0] if policy is None else policy
    if policy not in spec.expert_names:
        raise ValueError(f"{spec.name} has no data policy {policy!r}; known: {spec.expert_names}")
    length = min(spec.default_episode_steps, spec.max_episode_steps)  # as heldout_pairs
    steps = length if episode_steps is None else episode_steps
    steps -= steps % action_block  # whole blocks
    if seed < 0 or steps < 1:
        raise ValueError(
            f"seed must be >= 0 and episode_steps >= action_block, got {seed}, {steps}"
        )
    settings = {
        "env_id": spec.gym_id, "env_config": dict(env_config or {}), "policy": policy,
        "episodes": episodes, "episode_steps": steps, "action_block": action_block,
        "seed": HELDOUT_SEED_BASE + seed,
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "regenerated" / f"{spec.name}-{policy}-{key}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    return collect_dataset(
        spec.name, path, episodes, steps, HELDOUT_SEED_BASE + seed, progress=progress,
        env_config=env_config, policy=policy, action_block=action_block,
    )  # fmt: skip
