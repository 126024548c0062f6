"""Observation history: a model trained with a history of frames rolls out from the last ones,
fused and unfused alike, and planners and the controller pass them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.models import WorldModel


def model(history: int, predictor: str = "mlp") -> WorldModel:
    torch.manual_seed(0)
    extra = {} if predictor == "mlp" else {"predictor": predictor, "predictor_depth": 1,
                                            "predictor_heads": 2}  # fmt: skip
    return WorldModel(tiny_config(history=history, action_block=2, **extra)).eval()


def sequence(wm: WorldModel, length: int = 5):
    generator = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (1, length, *wm.obs_shape), generator=generator, dtype=torch.uint8)
    actions = torch.rand((1, length, 2 * wm.action_dim), generator=generator) * 2 - 1
    with torch.inference_mode():
        latents = wm.encode(obs[0]).unsqueeze(0)  # (1, T, D)
    return latents, actions


@pytest.mark.parametrize("predictor", ["mlp", "transformer"])
def test_rollout_from_a_history_is_the_teacher_forced_prediction(predictor):
    wm = model(history=3, predictor=predictor)
    latents, actions = sequence(wm)
    with torch.inference_mode():
        forced = wm.predict(latents[:, :3], wm.embed_actions(actions[:, :3]))[:, -1]  # ~ z_3
        rolled = wm.rollout(latents[:, 2], actions[:, 2:4], past_latents=latents[:, :2],
                            past_actions=actions[:, :2])  # fmt: skip
        unfused = wm._rollout_by_predict(latents[:, 2], wm.embed_actions(actions[:, 2:4]),
                                         wm._context(latents[:, 2], latents[:, :2],
                                                     actions[:, :2]))  # fmt: skip
        plain = wm.rollout(latents[:, 2], actions[:, 2:4])
    torch.testing.assert_close(rolled[:, 1], forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rolled, unfused, atol=1e-5, rtol=1e-5)
    assert rolled.shape == (1, 3, wm.latent_dim) and not torch.allclose(rolled, plain)


def test_a_model_without_history_ignores_past_frames():
    wm = model(history=1)
    latents, actions = sequence(wm)
    with torch.inference_mode():
        with_past = wm.rollout(latents[:, 2], actions[:, 2:4], latents[:, :2], actions[:, :2])
        without = wm.rollout(latents[:, 2], actions[:, 2:4])
    torch.testing.assert_close(with_past, without)
    with pytest.raises(ValueError, match="go together"):
        wm.rollout(latents[:, 2], actions[:, 2:4], past_latents=latents[:, :2])


def tiny_cem(wm):
    return lm.CEM(wm, horizon=3, num_samples=8, iterations=2, topk=2, seed=0)


def frames(wm, count):
    generator = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (count, *wm.obs_shape), generator=generator,
                         dtype=torch.uint8).numpy()  # fmt: skip


def test_plan_conditions_on_the_history_it_is_given():
    wm = model(history=3)
    obs = frames(wm, 4)
    past_actions = np.full((2, 4), 0.5, np.float32)
    with_history = tiny_cem(wm).plan(obs[2], obs[3], history=(obs[:2], past_actions))
    without = tiny_cem(wm).plan(obs[2], obs[3])
    assert with_history.energy != without.energy
    planner = tiny_cem(wm)
    z0, z_goal = planner.encode_pair(torch.from_numpy(obs[2:3]), torch.from_numpy(obs[3:4]))
    with torch.inference_mode():
        past = wm.encode(torch.from_numpy(obs[:2]))
    latent = planner.plan_latent(z0[0], z_goal[0], past=(past, torch.from_numpy(past_actions)))
    np.testing.assert_allclose(latent.actions, with_history.actions, atol=1e-6)


def test_controller_keeps_the_block_boundary_frames_and_blocks():
    wm = model(history=3)
    planner = tiny_cem(wm)
    seen = []
    original = planner.plan_latent

    def spy(z0, z_goal, **kwargs):
        seen.append(kwargs.get("past"))
        return original(z0, z_goal, **kwargs)

    planner.plan_latent = spy
    obs = frames(wm, 7)
    with lm.MPCController(planner, replan_every=2) as controller:
        controller.reset(obs[6])
        actions = [controller.act(obs[step]) for step in range(6)]
    assert seen[0] is None and len(seen) == 3
    with torch.inference_mode():
        encoded = wm.encode(torch.from_numpy(obs[[0, 2]]))
    latents, blocks = seen[2]  # the plan at step 4 sees the frames at 0 and 2
    torch.testing.assert_close(latents, encoded)
    executed = np.stack([np.concatenate(actions[0:2]), np.concatenate(actions[2:4])])
    np.testing.assert_allclose(blocks.numpy(), executed)
    assert seen[1][0].shape == (1, wm.latent_dim)  # at step 2: one frame so far
