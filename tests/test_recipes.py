"""Per-env recipes: every environment has one, and its probe target reads real env states."""

from __future__ import annotations

import numpy as np
import pytest

from lewm_mpc.cli import build_parser, cmd_collect
from lewm_mpc.envs import ENV_SPECS, get_env_spec
from lewm_mpc.recipes import Recipe, get_recipe

PROBE_SIZES = {"tworoom": 2, "reacher": 2, "pusht": 4, "cube": 3, "pointmass": 2}


@pytest.mark.parametrize("name", sorted(ENV_SPECS))
def test_every_env_has_a_recipe_from_its_definition(name: str) -> None:
    spec = get_env_spec(name)
    recipe = get_recipe(spec.gym_id)
    assert (recipe.env, recipe.episodes, recipe.episode_steps, recipe.workers) == (
        name,
        spec.recipe.episodes,
        spec.recipe.episode_steps,
        spec.recipe.workers,
    )
    assert recipe.train.steps == spec.recipe.train_steps
    assert recipe.probe_name == spec.probe.name


@pytest.mark.parametrize("name", sorted(ENV_SPECS))
def test_probe_target_reads_env_states(name: str) -> None:
    env = get_env_spec(name).make(obs_mode="state")
    try:
        states = []
        for seed in range(3):
            env.reset(seed=seed)
            states.append(env.unwrapped.get_state())
    finally:
        env.close()
    targets = get_recipe(name).probe_target(np.stack(states))
    assert targets.shape == (3, PROBE_SIZES[name])
    assert np.isfinite(targets).all()
    assert not np.allclose(targets[0], targets[1])  # it depends on the state


def test_recipe_validation() -> None:
    with pytest.raises(ValueError, match="unknown environment"):
        Recipe("nowhere", episodes=1, episode_steps=1)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        Recipe("tworoom", episodes=0, episode_steps=10)
    assert Recipe("tworoom", episodes=2, episode_steps=9).frames == 20


def test_cli_collect_defaults_come_from_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(
        "lewm_mpc.data.collection.collect_dataset",
        lambda *args, **kwargs: calls.append(args) or "x",
    )
    for argv in (
        ["collect", "cube", "--out", "x.h5"],
        ["collect", "cube", "--out", "x.h5", "--episodes", "3", "--workers", "1"],
    ):
        args = build_parser().parse_args(argv)
        cmd_collect(args)
    recipe = get_recipe("cube")
    assert calls[0][2:] == (recipe.episodes, recipe.episode_steps, 0, recipe.workers)
    assert calls[1][2:] == (3, recipe.episode_steps, 0, 1)
