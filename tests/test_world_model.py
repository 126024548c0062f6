"""World-model shapes for pixel and state inputs, both named configs, and the loss."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_config
from lewm_mpc import LatentWorldModel, WorldModel, WorldModelConfig, named_config


def _pixels(batch: int, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)


@pytest.mark.parametrize("history", [1, 3])
def test_pixel_model_shapes(history):
    model = WorldModel(tiny_config(history=history)).eval()
    assert isinstance(model, LatentWorldModel)
    z = model.encode(_pixels(4))
    assert z.shape == (4, 16)
    latents = model.rollout(z, torch.rand(4, 6, 10) * 2 - 1)
    assert latents.shape == (4, 7, 16)
    assert torch.equal(latents[:, 0], z)


def test_state_model_shapes_and_loss_backward():
    model = WorldModel(tiny_config(obs_mode="state", state_dim=5))
    obs, actions = torch.randn(8, 3, 5), torch.rand(8, 3, 10)
    terms = model.loss(obs, actions)
    terms.total.backward()
    assert terms.total.ndim == 0 and torch.isfinite(terms.total)
    assert all(p.grad is not None for p in model.encoder.parameters())
    model.eval()
    assert model.rollout(model.encode(obs[:, 0]), actions).shape == (8, 4, 16)


def test_rollout_matches_teacher_forced_prediction_for_mlp():
    model = WorldModel(tiny_config()).eval()
    z0 = model.encode(_pixels(2))
    actions = torch.rand(2, 1, 10)
    with torch.no_grad():
        direct = model.predict(z0[:, None], model.embed_actions(actions))[:, 0]
        assert torch.allclose(model.rollout(z0, actions)[:, 1], direct, atol=1e-6)


@pytest.mark.parametrize(("history", "depth"), [(1, 2), (3, 1), (2, 3)])
def test_fused_rollout_matches_step_by_step_predict_values_and_action_gradients(history, depth):
    """The eval-mode fused rollout is the same maths as one ``predict`` per step."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config(history=history, predictor_depth=depth)).eval()
    norm = model.pred_projector.net[1]  # BatchNorm with non-trivial statistics to fold
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    z0 = torch.randn(6, 16)
    actions = (torch.rand(6, 5, 10) * 2 - 1).requires_grad_(True)
    fused = model.rollout(z0, actions)
    stepwise = model._rollout_by_predict(z0, model.embed_actions(actions))
    assert torch.allclose(fused, stepwise, atol=1e-5)
    (grad_fused,) = torch.autograd.grad(fused.square().sum(), actions)
    (grad_stepwise,) = torch.autograd.grad(stepwise.square().sum(), actions)
    assert torch.allclose(grad_fused, grad_stepwise, rtol=1e-4, atol=1e-5)


def test_training_mode_rollout_uses_batch_statistics_not_the_fused_path():
    torch.manual_seed(0)
    model = WorldModel(tiny_config()).train()
    z0, actions = torch.randn(6, 16), torch.rand(6, 3, 10)
    with torch.no_grad():
        trained = model.rollout(z0, actions)
        stepwise = model._rollout_by_predict(z0, model.embed_actions(actions))
    assert torch.allclose(trained, stepwise, atol=1e-6)


def test_paper_config_builds_and_runs_forward_on_cpu():
    config = named_config("paper")
    assert (config.image_size, config.latent_dim, config.history) == (224, 192, 3)
    model = WorldModel(config).eval()
    assert 10e6 < model.num_parameters() < 20e6  # LeWM: ~15M
    with torch.no_grad():
        z = model.encode(_pixels(2, 224))
        assert z.shape == (2, 192)
        assert model.rollout(z, torch.rand(2, 4, 10)).shape == (2, 5, 192)
        terms = model.loss(_pixels(4, 224).view(2, 2, 224, 224, 3), torch.rand(2, 2, 10))
    assert torch.isfinite(terms.total)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"obs_mode": "voxels"}, "obs_mode"),
        ({"obs_mode": "state"}, "state_dim"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"action_low": (-1.0,)}, "action_dim"),
        ({"action_low": (1.0, 1.0)}, "action_low < action_high"),
        ({"image_size": 60}, None),
    ],
)
def test_invalid_configs_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        WorldModel(WorldModelConfig(**fields))


def test_unknown_named_config():
    with pytest.raises(ValueError, match="paper"):
        named_config("huge")


@pytest.mark.parametrize("history", [1, 2])
def test_the_rollout_term_feeds_back_the_models_own_predictions(history):
    """With two frames the open-loop term is the teacher-forced one; with more it differs (the
    predictor sees its own predictions) and it back-propagates into the encoder."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config(history=history)).train()
    obs = torch.randint(0, 256, (6, 4, 64, 64, 3), dtype=torch.uint8)
    actions = torch.randn(6, 4, model.action_block * model.action_dim)
    two = model.loss(obs[:, :2], actions[:, :2], rollout_weight=1.0)
    torch.testing.assert_close(two.rollout, two.prediction)
    four = model.loss(obs, actions, rollout_weight=0.5)
    assert not torch.allclose(four.rollout, four.prediction)
    torch.testing.assert_close(
        four.total, four.prediction + 0.09 * four.sigreg + 0.5 * four.rollout
    )
    four.rollout.backward()
    assert model.encoder.head[1].weight.grad.abs().sum() > 0
    assert model.loss(obs, actions).rollout is None  # LeWM's objective by default
