"""The fused rollout's constant-weight path: the hand-written backward to the inputs, the
``input_gradients_only`` hint and the cache of rearranged weights."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.models import input_gradients_only


def _model(history: int = 1, depth: int = 2, seed: int = 0) -> WorldModel:
    """An eval-mode model whose BatchNorm has non-trivial statistics to fold."""
    torch.manual_seed(seed)
    model = WorldModel(tiny_config(history=history, predictor_depth=depth)).eval()
    norm = model.pred_projector.net[1]
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
        for layer in model.predictor.net:  # layer norms away from the identity
            if isinstance(layer, torch.nn.LayerNorm):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.normal_(0.0, 0.1)
    return model


def _inputs(num: int = 5, horizon: int = 4, past: int = 0):
    generator = torch.Generator().manual_seed(1)
    z0 = torch.randn(num, 16, generator=generator, requires_grad=True)
    actions = (torch.rand(num, horizon, 10, generator=generator) * 2 - 1).requires_grad_(True)
    if not past:
        return z0, actions, {}
    extra = {
        "past_latents": torch.randn(num, past, 16, generator=generator, requires_grad=True),
        "past_actions": torch.rand(num, past, 10, generator=generator) * 2 - 1,
    }
    return z0, actions, extra


def _loss(latents: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(0.5, 1.5, latents.shape[1])[None, :, None]
    return (latents.square() * weights).sum() + latents[:, -1].sum()


@pytest.mark.parametrize(("history", "depth", "past"), [(1, 2, 0), (3, 1, 0), (3, 2, 2), (2, 3, 1)])
def test_input_gradients_only_gives_autograds_gradients_for_every_input(history, depth, past):
    """Inside ``input_gradients_only`` the hand-written backward (one node for the rollout)
    matches autograd's gradients for every input: start latents, actions, past latents."""
    model = _model(history, depth)
    z0, actions, extra = _inputs(past=past)
    inputs = [z0, actions, *([extra["past_latents"]] if past else [])]
    reference = model.rollout(z0, actions, **extra)
    expected = torch.autograd.grad(_loss(reference), inputs)
    with input_gradients_only():
        latents = model.rollout(z0, actions, **extra)
    assert latents.grad_fn is not None and "InputGrad" in type(latents.grad_fn).__name__
    assert torch.allclose(latents, reference, atol=1e-5)
    _loss(latents).backward()
    for tensor, want in zip(inputs, expected, strict=True):
        assert torch.allclose(tensor.grad, want, rtol=1e-4, atol=1e-5)
    assert all(parameter.grad is None for parameter in model.predictor.parameters())


def test_the_hand_written_backward_runs_again_on_a_retained_graph():
    model = _model()
    z0, actions, _ = _inputs()
    with input_gradients_only():
        loss = _loss(model.rollout(z0, actions))
    (first,) = torch.autograd.grad(loss, [actions], retain_graph=True)
    (second,) = torch.autograd.grad(loss, [actions])
    assert torch.equal(first, second)


def test_outside_the_context_gradients_still_reach_the_parameters():
    model = _model()
    z0, actions, _ = _inputs()
    _loss(model.rollout(z0, actions)).backward()
    assert model.predictor.net[0].weight.grad is not None
    assert model.pred_projector.net[0].weight.grad is not None


def test_cached_weights_follow_in_place_parameter_updates():
    """A rollout after an optimizer step, a state-dict load or a buffer change uses the new
    weights (compared with the unfused step-by-step rollout)."""
    model = _model()
    z0, actions, _ = _inputs()

    def check() -> None:
        with torch.no_grad():
            fused = model.rollout(z0, actions)
            stepwise = model._rollout_by_predict(z0, model.embed_actions(actions))
        assert torch.allclose(fused, stepwise, atol=1e-5)

    check()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    _loss(model.rollout(z0, actions)).backward()
    optimizer.step()
    check()
    model.load_state_dict(_model(seed=3).state_dict())
    check()
    model.pred_projector.net[1].running_var.mul_(3.0)
    check()


def test_copies_and_pickles_roll_out_like_the_original():
    model = _model()
    z0, actions, _ = _inputs()
    with torch.no_grad():
        original = model.rollout(z0, actions)
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.allclose(other.rollout(z0, actions), original, atol=1e-6)
            with torch.no_grad():
                other.predictor.net[3].weight.mul_(-1.0)
            assert not torch.allclose(other.rollout(z0, actions), original, atol=1e-3)
            assert torch.equal(model.rollout(z0, actions), original)


def test_weights_first_fused_under_inference_mode_serve_a_gradient_later():
    """A sampling planner fuses under ``torch.inference_mode``; a gradient planner then
    differentiates the same model."""
    model = _model()
    z0, actions, _ = _inputs()
    with torch.inference_mode():
        model.rollout(z0.detach(), actions.detach())
    with input_gradients_only():
        (grad,) = torch.autograd.grad(_loss(model.rollout(z0, actions)), [actions])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
