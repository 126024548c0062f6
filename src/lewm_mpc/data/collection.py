"""Dataset collection for a registered environment: its data policy, settings and file."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lewm_mpc.data import collect
from lewm_mpc.envs import get_env_spec


def env_config_of(env: Any) -> dict[str, Any]:
    """JSON-ready settings of an env (its ``config`` dataclass, if it has one)."""
    config = getattr(env.unwrapped, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def collect_dataset(
    env_name: str,
    path: str | Path,
    num_episodes: int,
    episode_steps: int | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    env_config: Mapping[str, Any] | None = None,
    policy: str | None = None,
    action_block: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Collect (or resume/extend) a dataset of ``env_name`` with its data policy.

    Args:
        env_name: registry name or gym id (see ``lewm_mpc.envs.ENV_SPECS``).
        path: target ``.h5`` file (never overwritten with different settings).
        num_episodes: episodes wanted in the file.
        episode_steps: actions per episode (default: the env's collection length).
        seed: base seed; episode i depends only on (seed, i).
        workers: parallel collection processes (with ``executor="ray"``: the CPUs of the
            local Ray cluster started when there is no address; 1: all of them).
        progress: show a progress bar.
        env_config: env config fields to override (e.g. ``{"image_size": 224}``); the full
            config is stored in the dataset and reused by training and evaluation.
        policy: the env's data policy (``EnvSpec.expert_names``; default: its first), recorded
            in the dataset.
        action_block: env actions per stored frame (``K``; ``episode_steps`` must be a multiple).
            With ``K > 1`` the env runs with state observations and only the stored frames are
            rendered (``render_state``): the frames and actions are those of a ``K = 1`` dataset
            of the same seed, every ``K``-th frame kept and actions grouped by ``K``.
        executor: ``"local"`` or ``"ray"`` (chunks as Ray tasks; the same dataset).
        ray_address: Ray cluster address (default ``RAY_ADDRESS``; neither: a local cluster).
    """
    spec = get_env_spec(env_name)
    policy = spec.expert_names[0] if policy is None else policy
    if policy not in spec.expert_names:
        raise ValueError(f"{spec.name} has no data policy {policy!r}; known: {spec.expert_names}")
    steps = episode_steps or spec.recipe.episode_steps
    # K > 1: state observations, so that the frames between stored ones are never rendered.
    obs_mode = "pixels" if action_block == 1 else "state"
    make_env = functools.partial(spec.make, obs_mode=obs_mode, env_config=env_config)
    probe = make_env()
    config = env_config_of(probe)
    probe.close()
    make_policy = functools.partial(spec.make_expert, policy=policy)
    return collect(
        make_env, make_policy, path, num_episodes, steps, seed, spec.gym_id, config,
        progress, workers=workers, data_policy=policy, action_block=action_block,
        executor=executor, ray_address=ray_address,
    )  # fmt: skip
