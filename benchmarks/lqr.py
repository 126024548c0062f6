"""LQR check: every planner at its default budget against the exact Riccati optimum.

A 2-D double integrator (state = position and velocity, action = acceleration, dt = 0.1) is
wrapped as a protocol-only ``LatentWorldModel`` (latent = state, ``action_block = 1``, action
bounds [-5, 5], wide enough that the unconstrained optimum stays inside them). The energy is the
LQR cost to the origin over a horizon of 10 steps,

    J(u) = sum_{t=1}^{H-1} x_t' Q x_t + sum_{t=0}^{H-1} u_t' R u_t + x_H' Q_f x_H,

whose minimum over the stacked action vector comes from the backward Riccati recursion (the
constant x_0' Q x_0 is left out so it cannot flatter the ratio). Each planner plans from the
same random starts (fixed seed); the reported ratio is J(planned actions) / J(optimum),
recomputed in float64 on the true system.

    .venv/bin/python benchmarks/lqr.py      # ~5 s on 2 CPU cores

Writes ``benchmarks/results/lqr.{json,md}``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic


@dataclass(frozen=True)
class Args:
    out: Path = Path("benchmarks/results")
    starts: int = 8  # random initial states
    horizon: int = 10
    seed: int = 0
    iterations: int = 0  # > 0 overrides every planner's iterations (smoke runs); 0: defaults


DT = 0.1
ACTION_BOUND = 5.0
Q = np.eye(4)
R = 0.1 * np.eye(2)
Q_FINAL = 10.0 * np.eye(4)


def double_integrator(dt: float = DT) -> tuple[np.ndarray, np.ndarray]:
    """(A (4, 4), B (4, 2)) of a 2-D point mass: state (px, py, vx, vy), action (ax, ay)."""
    a = np.eye(4)
    a[0, 2] = a[1, 3] = dt
    b = np.zeros((4, 2))
    b[0, 0] = b[1, 1] = dt**2 / 2
    b[2, 0] = b[3, 1] = dt
    return a, b


def riccati(
    a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, q_final: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Finite-horizon discrete-time Riccati recursion (backward pass).

    Returns:
        gains (H, m, n) with u_t = -K_t x_t, and cost-to-go matrices (H + 1, n, n) with
        P_H = Q_f; the optimal cost from x_0 (including x_0' Q x_0) is x_0' P_0 x_0.
    """
    p = q_final
    gains, costs = [], [p]
    for _ in range(horizon):
        gain = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)  # (m, n)
        p = q + a.T @ p @ (a - b @ gain)
        p = (p + p.T) / 2
        gains.append(gain)
        costs.append(p)
    return np.stack(gains[::-1]), np.stack(costs[::-1])


def optimal_actions(a: np.ndarray, b: np.ndarray, gains: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """(H, m) optimal open-loop actions from x0 under the Riccati gains."""
    x, actions = x0, []
    for gain in gains:
        u = -gain @ x
        actions.append(u)
        x = a @ x + b @ u
    return np.stack(actions)


def cost(a: np.ndarray, b: np.ndarray, x0: np.ndarray, actions: np.ndarray) -> float:
    """J(actions) from x0 without the constant x_0' Q x_0 (float64, the true system)."""
    x, total = x0, 0.0
    for t, u in enumerate(actions):
        if t > 0:
            total += x @ Q @ x
        total += u @ R @ u
        x = a @ x + b @ u
    return float(total + x @ Q_FINAL @ x)


class LinearSystem:
    """x' = A x + B u as a ``LatentWorldModel`` (no subclassing): latent = state."""

    latent_dim = 4
    action_dim = 2
    action_block = 1
    obs_shape = (4,)
    obs_dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, a: np.ndarray, b: np.ndarray, bound: float = ACTION_BOUND) -> None:
        self.a = torch.as_tensor(a, dtype=torch.float32)
        self.b = torch.as_tensor(b, dtype=torch.float32)
        self.action_low = torch.full((2,), -bound)
        self.action_high = torch.full((2,), bound)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        states = [z0]  # each (S, 4)
        for t in range(actions.shape[1]):
            states.append(states[-1] @ self.a.T + actions[:, t] @ self.b.T)
        return torch.stack(states, dim=1)  # (S, H+1, 4)


class QuadraticCost:
    """The LQR cost of the state relative to the goal latent, as an ``Energy``."""

    def __init__(self) -> None:
        self.q = torch.as_tensor(Q, dtype=torch.float32)
        self.r = torch.as_tensor(R, dtype=torch.float32)
        self.q_final = torch.as_tensor(Q_FINAL, dtype=torch.float32)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        error = latents[:, 1:] - goal[:, None]  # (S, H, 4)
        running = torch.einsum("sti,ij,stj->s", error[:, :-1], self.q, error[:, :-1])
        terminal = torch.einsum("si,ij,sj->s", error[:, -1], self.q_final, error[:, -1])
        control = torch.einsum("sti,ij,stj->s", actions, self.r, actions)
        return running + terminal + control  # (S,)


def planners(iterations: int) -> dict[str, Callable[..., lm.Planner]]:
    """Name -> constructor(model, **kwargs); ``iterations > 0`` shrinks every budget."""
    small: dict[str, Any] = {"iterations": iterations} if iterations > 0 else {}
    hybrid_small = {**small, "cem_iterations": iterations} if iterations > 0 else {}
    return {
        "CEM": lambda model, **kw: lm.CEM(model, **small, **kw),
        "CEM + iCEM options (beta 2, keep 0.3)": lambda model, **kw: lm.CEM(
            model, noise_beta=2.0, keep_elites=0.3, **small, **kw
        ),
        "MPPI": lambda model, **kw: lm.MPPI(model, **small, **kw),
        "Gradient": lambda model, **kw: lm.GradientPlanner(model, **small, **kw),
        "Hybrid (CEM init + gradient)": lambda model, **kw: lm.GradientPlanner.hybrid(
            model, **hybrid_small, **kw
        ),
    }


def main(args: Args) -> dict:
    a, b = double_integrator()
    gains, costs = riccati(a, b, Q, R, Q_FINAL, args.horizon)
    rng = np.random.default_rng(args.seed)
    starts = rng.uniform(-1.0, 1.0, size=(args.starts, 4))
    optimum = np.array([x0 @ costs[0] @ x0 - x0 @ Q @ x0 for x0 in starts])
    largest = max(np.abs(optimal_actions(a, b, gains, x0)).max() for x0 in starts)
    if largest >= ACTION_BOUND:
        raise RuntimeError(f"optimum leaves the action bounds ({largest:.2f}): widen them")
    model, energy = LinearSystem(a, b), QuadraticCost()
    goal = np.zeros(4, np.float32)
    rows = []
    for name, make in planners(args.iterations).items():
        planner = make(model, horizon=args.horizon, seed=args.seed, energy=energy)
        ratios, seconds, evals = [], [], 0
        for x0, best in zip(starts, optimum, strict=True):
            planner.reset()
            result = planner.plan(x0.astype(np.float32), goal)
            ratios.append(cost(a, b, x0, result.actions.astype(np.float64)) / best)
            seconds.append(result.solve_s)
            evals = result.energy_evals
        rows.append({
            "planner": name,
            "budget": {k: v for k, v in asdict(planner.config).items()
                       if k not in ("horizon", "receding_horizon", "seed", "warm_start")},
            "energy_evals": evals,
            "ratio_mean": float(np.mean(ratios)),
            "ratio_max": float(np.max(ratios)),
            "ratios": [float(x) for x in ratios],
            "plan_ms_median": 1000 * float(np.median(seconds)),
        })  # fmt: skip
    result = {
        "problem": {
            "system": "2-D double integrator, dt 0.1, state 4, action 2, bounds [-5, 5]",
            "cost": "Q = I, R = 0.1 I, Q_f = 10 I, x_0' Q x_0 excluded",
            "horizon": args.horizon,
            "starts": args.starts,
            "start_distribution": "uniform [-1, 1]^4",
            "seed": args.seed,
            "optimal_cost_mean": float(optimum.mean()),
            "largest_optimal_action": float(largest),
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "lqr.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "lqr.md", markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    problem = result["problem"]
    lines = [
        f"LQR, {problem['system']}, horizon {problem['horizon']}, {problem['starts']} random "
        f"starts; cost ratio = J(plan) / J(Riccati optimum) (1.000 is optimal).",
        "",
        "| planner (default budget) | energy evals / plan | cost ratio mean | cost ratio max "
        "| plan time p50 |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['planner']} | {row['energy_evals']:,} | {row['ratio_mean']:.4f} | "
            f"{row['ratio_max']:.4f} | {row['plan_ms_median']:.0f} ms |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
