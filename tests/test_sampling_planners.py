"""The shared sampling loop reproduces CEM's and MPPI's plans exactly.

``EXPECTED`` was recorded with the per-planner loops that preceded :class:`SamplingPlanner`; the
same seeds must keep giving the same plans (warm start, batching, colored noise, elite carry-over,
feasible-first ranking, MPPI's weighting and the hybrid's CEM warm-up included).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import Toy2DModel

GAIN = 0.3


class Curved(Toy2DModel):
    """A 2-D toy model with a saturating step: z' = z + GAIN * tanh(sum of block actions)."""

    def step(self, block_sums: torch.Tensor) -> torch.Tensor:
        return GAIN * torch.tanh(block_sums)


def goal_energy(latents, actions, goal):
    return (latents[:, -1] - goal).pow(2).sum(-1)


def keep_out(latents, actions, goal):
    """Violation: depth inside a disc of radius 0.25 around (0.2, 0.0), summed over steps."""
    depth = 0.25 - (latents[:, 1:] - torch.tensor([0.2, 0.0])).norm(dim=-1)  # (S, H)
    return depth.clamp_min(0.0).sum(-1)


HARD = [lm.energies.Guardrail(keep_out, "keep_out", weight=1.0, hard=True)]
SAMPLING = {"horizon": 2, "num_samples": 16, "iterations": 4, "seed": 3, "polish_steps": 0}
CASES = {
    "cem": (lm.CEM, {**SAMPLING, "topk": 4}, False),
    "cem_icem": (lm.CEM, {**SAMPLING, "topk": 4, "noise_beta": 2.0, "keep_elites": 0.5}, False),
    "cem_hard": (lm.CEM, {**SAMPLING, "topk": 4}, True),
    "mppi": (lm.MPPI, {**SAMPLING, "temperature": 0.5}, False),
    "mppi_topk_hard": (lm.MPPI, {**SAMPLING, "topk": 6, "adapt_std": False}, True),
    "hybrid": (
        lm.GradientPlanner.hybrid,
        {"horizon": 2, "seed": 3, "restarts": 2, "iterations": 3, "cem_iterations": 3,
         "cem_samples": 16, "cem_topk": 4},
        True,
    ),
    "hybrid_adam": (
        lm.GradientPlanner.hybrid,
        {"horizon": 2, "seed": 3, "restarts": 2, "iterations": 3, "cem_iterations": 3,
         "cem_samples": 16, "cem_topk": 4, "optimizer": "adam"},
        True,
    ),
}  # fmt: skip
OBS = np.array([[-0.5, 0.1], [0.0, -0.4]], dtype=np.float32)
GOAL = np.array([[0.6, 0.0], [0.3, 0.5]], dtype=np.float32)


def run_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Two warm-started batched plans; returns the second plan's actions and energies."""
    make, config, hard = CASES[name]
    planner = make(Curved(), energy=goal_energy, guardrails=HARD if hard else (), **config)
    planner.plan(OBS, GOAL)
    result = planner.plan(OBS, GOAL)
    return result.actions, result.energy


# Recorded with the loops that preceded SamplingPlanner (second plan: actions per env, energies);
# hybrid_adam with the Adam loop that preceded L-BFGS.
EXPECTED: dict[str, tuple[list[list[float]], list[float]]] = {
    "cem": (
        [
            [1.0, 0.376452, 0.894631, 0.139911, 0.809555, -0.067197, 0.988835, -0.787552],
            [0.715316, 0.749446, 0.406777, 0.89542, 0.098164, 0.638031, -0.090193, 0.89768],
        ],
        [0.281316, 0.124237],
    ),
    "cem_icem": (
        [
            [0.986625, -0.693707, 0.967449, -0.327911, 0.968608, 0.391436, 0.695732, 0.097822],
            [0.131446, 0.993031, 0.892004, 0.895414, 0.717299, 0.640047, -0.106633, 0.845265],
        ],
        [0.283655, 0.126417],
    ),
    "cem_hard": (
        [
            [1.0, 1.0, 1.0, 0.310848, 0.848585, -0.06041, 1.0, -0.220889],
            [0.739825, 0.521489, -0.870256, 0.977426, -0.12377, 0.774529, 0.155252, 0.847526],
        ],
        [0.352741, 0.231776],
    ),
    "mppi": (
        [
            [0.958949, 0.244967, 0.794745, 0.452817, 0.874507, -0.273017, 0.986131, -0.76568],
            [0.896163, 0.752089, -0.026637, 0.974728, 0.285737, 0.753977, -0.219282, 1.0],
        ],
        [0.284914, 0.11766],
    ),
    "mppi_topk_hard": (
        [
            [0.984584, 0.98815, 0.998803, -0.990938, 0.631125, 0.048074, 0.998761, 0.977349],
            [-1.0, -0.668409, -0.134776, 1.0, 0.834631, 0.404286, -0.248018, 1.0],
        ],
        [0.393865, 0.438242],
    ),
    "hybrid": (  # L-BFGS after the CEM warm-up (same warm-up as hybrid_adam)
        [
            [0.96116, 0.832914, 0.598959, 0.938075, 0.806262, -0.400959, 1.0, -0.244706],
            [-0.947391, 1.0, -0.947391, 1.0, 0.609396, 0.083174, 0.737159, 1.0],
        ],
        [0.337978, 0.244214],
    ),
    "hybrid_adam": (
        [
            [0.96116, 0.832914, 0.598959, 0.938075, 0.806262, -0.400959, 1.0, -0.244706],
            [-0.181371, 0.970127, -0.562426, 1.0, 0.546497, 0.806406, -0.156825, 0.566798],
        ],
        [0.337978, 0.263803],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_gives_the_recorded_plan(name):
    actions, energy = run_case(name)
    expected_actions, expected_energy = EXPECTED[name]
    flat = actions.reshape(actions.shape[0], -1)  # (B, H*block*A)
    np.testing.assert_allclose(flat, expected_actions, rtol=0, atol=2e-6)
    np.testing.assert_allclose(energy, expected_energy, rtol=0, atol=2e-6)
