"""LQR check: every planner at its default budget against the exact optimum of 16 hard
linear-quadratic problems.

A seeded family of linear systems ``x' = A x + B u`` (``make_problem(index, seed)``), each wrapped
as a protocol-only ``LatentWorldModel`` (latent = state), spans what makes planning hard:

- shapes: state n in 2..8, action m in 1..3, action block k in 1..3 (one model step applies k
  env actions in sequence, so a model action has k*m entries); the first 8 problems are the 8
  corners (n, m, k) in {2, 8} x {1, 3} x {1, 3}, the other 8 mix the middle values;
- dense A (a random orthogonal matrix times spread singular values, scaled to a spectral radius
  in 0.8-1.0); every 4th problem is open-loop unstable (one real eigenvalue of modulus 1.05-1.2,
  the others inside the unit circle); dense B ~ N(0, 1/n);
- a horizon of H = 5 model steps (5 k env steps) and the cost

      J(u) = sum_{t=1}^{H-1} x_t' Q x_t + x_H' Q_f x_H + r sum_{s=0}^{Hk-1} u_s' u_s,

  state cost at block boundaries only (the latents the model outputs), control cost on every env
  action, x_0' Q x_0 left out so it cannot flatter the ratio, goal = origin; Q and Q_f random SPD
  with log-spread eigenvalues (the smallest along range(B), so that a wider spread can raise the
  condition number); r (and, where r alone cannot, the spread of Q and Q_f) sets the condition
  number of the Hessian of J in the stacked action vector u in R^{Hkm} to a target drawn
  log-uniformly from 1e1..1e4 (``np.geomspace(10, 1e4, 16)`` permuted with the seed); Q, Q_f
  and r are scaled so that doing nothing costs J(0) = 1;
- asymmetric bounds ``-b_lo <= u <= b_hi`` per action coordinate, 0.5x-2x the largest |u| of the
  unconstrained optimum: in half of the problems the side where that optimum peaks gets a factor
  below 1, so bounds are active at the bounded optimum; in the other half all factors exceed 1.

J is a least-squares objective ||G u + g||^2 (rows L x_t with L'L = Q or Q_f, and sqrt(r) u), so
the exact bounded optimum comes from ``scipy.optimize.lsq_linear`` (BVLS). The script checks it
against a float64 simulation of the true system, and, where no bound is active, against the
backward Riccati recursion on the lifted (block) system. Each planner plans once per problem from
the problem's start state (norm 1); its ratio is J(planned actions) / J(optimum), recomputed in
float64 on the true system.

    .venv/bin/python benchmarks/lqr.py      # ~7 s on 1 CPU thread

Writes ``benchmarks/results/lqr.{json,md}`` (``lqr_seed<seed>.{json,md}`` for another seed).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic


@dataclass(frozen=True)
class Args:
    out: Path = Path("benchmarks/results")
    problems: int = 16  # members of the family (indices 0..problems-1)
    seed: int = 0
    iterations: int = 0  # > 0 overrides every planner's iterations (smoke runs); 0: defaults


HORIZON = 5  # model steps
FAMILY = 16  # the condition targets and shapes cycle with this period
CONDITION_RANGE = (1e1, 1e4)
# (n, m, k) per index: the 8 corners of {2, 8} x {1, 3} x {1, 3}, then middle values.
SHAPES = (
    (2, 1, 1), (8, 1, 1), (2, 3, 1), (8, 3, 1), (2, 1, 3), (8, 1, 3), (2, 3, 3), (8, 3, 3),
    (3, 2, 2), (4, 2, 1), (5, 1, 2), (6, 3, 2), (7, 2, 3), (4, 3, 2), (5, 2, 2), (6, 1, 3),
)  # fmt: skip
NOT_BUDGET = ("horizon", "receding_horizon", "seed", "warm_start")  # config fields left out
POLISH = 50  # L-BFGS evaluations of the "+ polish" rows (``polish_steps``)
ACTIVE_TOL = 1e-9  # relative to the bound: an action this close to it counts as on it


@dataclass(frozen=True, eq=False)  # numpy fields: compare by identity
class Problem:
    """One member of the family: system, cost, bounds and start (float64 numpy arrays)."""

    index: int
    seed: int
    a: np.ndarray  # (n, n)
    b: np.ndarray  # (n, m)
    q: np.ndarray  # (n, n) running state cost at model steps 1..H-1
    q_final: np.ndarray  # (n, n) state cost at model step H
    r: float  # control cost r u'u of every env action
    low: np.ndarray  # (m,) lower bound of every env action (float32-representable, < 0)
    high: np.ndarray  # (m,) upper bound (float32-representable, > 0)
    x0: np.ndarray  # (n,) start state, norm 1
    block: int  # k, env actions per model step
    horizon: int  # H, model steps
    unstable: bool  # A has an eigenvalue outside the unit circle
    spectral_radius: float
    target_condition: float
    condition: float  # achieved condition number of the Hessian of J in u (Hk*m,)
    tight: bool  # bounds placed to cut the unconstrained optimum

    @property
    def n(self) -> int:
        return self.a.shape[0]

    @property
    def m(self) -> int:
        return self.b.shape[1]

    @property
    def steps(self) -> int:
        """Env steps H * k."""
        return self.horizon * self.block


def condition_targets(seed: int) -> np.ndarray:
    """(16,) Hessian condition numbers, log-uniform over ``CONDITION_RANGE``, seed-permuted."""
    targets = np.geomspace(*CONDITION_RANGE, FAMILY)
    return targets[np.random.default_rng(seed).permutation(FAMILY)]


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def _dynamics(rng: np.random.Generator, n: int, unstable: bool) -> np.ndarray:
    """Dense A: orthogonal times spread singular values, scaled to its spectral radius; when
    ``unstable``, one real eigenvalue of modulus 1.05-1.2 and the others of modulus <= 0.95."""

    def stable(size: int, radius: float) -> np.ndarray:
        a = _orthogonal(rng, size) * rng.uniform(0.5, 1.0, size=size)
        return a * radius / np.abs(np.linalg.eigvals(a)).max()

    if not unstable:
        return stable(n, rng.uniform(0.8, 1.0))
    core = np.zeros((n, n))
    core[0, 0] = rng.choice([-1.0, 1.0]) * rng.uniform(1.05, 1.2)
    core[1:, 1:] = stable(n - 1, rng.uniform(0.8, 0.95))
    core[0, 1:] = rng.normal(size=n - 1) / np.sqrt(n)  # couple the unstable mode (keeps eigs)
    basis = _orthogonal(rng, n)
    return basis @ core @ basis.T


def _spd(rng: np.random.Generator, b: np.ndarray, spread: float) -> np.ndarray:
    """Random SPD matrix with eigenvalues log-spaced from 1 / spread up to 1; when B has fewer
    columns than rows, the eigenvectors of the smallest eigenvalues span range(B) (else random).

    Weighting lightly what the last actions move is what lets the spread raise the Hessian's
    condition number (random eigenvectors barely do for n = 8, m = k = 1)."""
    n, m = b.shape
    if m < n:
        columns = np.hstack([b @ rng.normal(size=(m, m)), rng.normal(size=(n, n - m))])
        basis = np.linalg.qr(columns)[0]
    else:
        basis = _orthogonal(rng, n)
    return (basis * np.geomspace(1.0 / spread, 1.0, n)) @ basis.T


def _state_rows(
    a: np.ndarray, b: np.ndarray, q: np.ndarray, q_final: np.ndarray, x0: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """State part of the least squares: rows L x_t (L'L = Q, or Q_f at t = H) for model steps
    t = 1..H, as (G_x (H*n, H*k*m), g_x (H*n,)) with L x_t = G_x u + g_x."""
    n, m = b.shape
    steps = HORIZON * k
    # Env-step propagation: x_s = A^s x0 + sum_{j<s} A^{s-1-j} B u_j.
    free, forced = x0, np.zeros((n, steps * m))
    rows, offsets = [], []
    for s in range(steps):
        forced = a @ forced
        forced[:, s * m : (s + 1) * m] = b
        free = a @ free
        if (s + 1) % k == 0:
            weight = q_final if s + 1 == steps else q
            root = np.linalg.cholesky(weight).T  # root' root = weight
            rows.append(root @ forced)
            offsets.append(root @ free)
    return np.vstack(rows), np.concatenate(offsets)


def least_squares(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(G (H*n + H*k*m, H*k*m), g) with J(u) = ||G u + g||^2 for the stacked env actions u."""
    gx, offset = _state_rows(
        problem.a, problem.b, problem.q, problem.q_final, problem.x0, problem.block
    )
    size = gx.shape[1]
    g = np.concatenate([offset, np.zeros(size)])
    return np.vstack([gx, np.sqrt(problem.r) * np.eye(size)]), g


def make_problem(index: int, seed: int) -> Problem:
    """Member ``index`` of the seeded family (deterministic in (index, seed))."""
    rng = np.random.default_rng([seed, index])
    n, m, k = SHAPES[index % FAMILY]
    unstable = index % 4 == 3
    tight = index % 2 == (index // 4) % 2  # 0, 2, 5, 7, 8, ...: half, decorrelated from unstable
    target = float(condition_targets(seed)[index % FAMILY])
    a = _dynamics(rng, n, unstable)
    b = rng.normal(size=(n, m)) / np.sqrt(n)
    x0 = rng.normal(size=n)
    x0 /= np.linalg.norm(x0)
    # Q's spread grows (x10) until r > 0 can bring the Hessian down to the target condition.
    spread = 10 ** rng.uniform(0.0, 1.0)
    bases = rng.integers(2**32, size=2)  # the same eigenvectors whatever the spread
    final_weight = rng.uniform(1.0, 10.0)
    for _ in range(12):
        q = _spd(np.random.default_rng(bases[0]), b, spread)
        q_final = final_weight * _spd(np.random.default_rng(bases[1]), b, spread)
        gx, offset = _state_rows(a, b, q, q_final, x0, k)
        eigs = np.linalg.eigvalsh(gx.T @ gx)
        low_eig, high_eig = max(eigs[0], 0.0), eigs[-1]
        if high_eig > 1.5 * target * low_eig:
            break
        spread *= 10
    else:
        raise RuntimeError(f"problem {index}: cannot reach condition {target:.3g}")
    r = (high_eig - target * low_eig) / (target - 1)
    # Units: doing nothing costs J(0) = ||g_x||^2 = 1 (scales neither u* nor the condition).
    scale = 1.0 / float(offset @ offset)
    q, q_final, r = q * scale, q_final * scale, r * scale
    gx, offset = gx * np.sqrt(scale), offset * np.sqrt(scale)
    size = gx.shape[1]
    big_g = np.vstack([gx, np.sqrt(r) * np.eye(size)])
    singular = np.linalg.svd(big_g, compute_uv=False)
    condition = float((singular[0] / singular[-1]) ** 2)
    # Bounds: 0.5x-2x the unconstrained optimum's largest |u| per coordinate.
    free_opt = np.linalg.lstsq(big_g, -np.concatenate([offset, np.zeros(size)]), rcond=None)[0]
    free_opt = free_opt.reshape(HORIZON * k, m)
    peak = np.abs(free_opt).max(axis=0)  # (m,)
    below, above = rng.uniform(1.1, 1.5, size=m), rng.uniform(1.6, 2.0, size=m)
    swap = rng.random(m) < 0.5
    lo_factor, hi_factor = np.where(swap, above, below), np.where(swap, below, above)
    if tight:  # the side where the optimum peaks is cut
        cut = rng.uniform(0.5, 0.9, size=m)
        peaks_high = free_opt.max(axis=0) >= -free_opt.min(axis=0)
        hi_factor = np.where(peaks_high, cut, hi_factor)
        lo_factor = np.where(peaks_high, lo_factor, cut)
    return Problem(
        index=index,
        seed=seed,
        a=a,
        b=b,
        q=q,
        q_final=q_final,
        r=float(r),
        low=_float32(-lo_factor * peak),
        high=_float32(hi_factor * peak),
        x0=x0,
        block=k,
        horizon=HORIZON,
        unstable=unstable,
        spectral_radius=float(np.abs(np.linalg.eigvals(a)).max()),
        target_condition=target,
        condition=condition,
        tight=tight,
    )


def _float32(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to float32 (the planners clamp to the bounds in float32), as float64."""
    return x.astype(np.float32).astype(np.float64)


def bounded_optimum(problem: Problem) -> tuple[np.ndarray, float]:
    """Exact minimizer of J within the bounds (BVLS), as ((H*k, m) actions, J*)."""
    big_g, g = least_squares(problem)
    steps = problem.steps
    low, high = np.tile(problem.low, steps), np.tile(problem.high, steps)
    solved = scipy.optimize.lsq_linear(big_g, -g, bounds=(low, high), method="bvls", tol=1e-12)
    if not solved.success:
        raise RuntimeError(f"problem {problem.index}: BVLS failed ({solved.message})")
    u = np.clip(solved.x, low, high)
    residual = big_g @ u + g
    return u.reshape(steps, problem.m), float(residual @ residual)


def active_bounds(problem: Problem, actions: np.ndarray) -> int:
    """Number of action entries on a bound (relative tolerance ``ACTIVE_TOL``)."""
    on_low = actions <= problem.low + ACTIVE_TOL * np.abs(problem.low)
    on_high = actions >= problem.high - ACTIVE_TOL * np.abs(problem.high)
    return int((on_low | on_high).sum())


def cost(problem: Problem, actions: np.ndarray) -> float:
    """J(actions) by simulating the true system in float64; actions (H*k, m) env actions."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != (problem.steps, problem.m):
        raise ValueError(f"actions must be {(problem.steps, problem.m)}, got {actions.shape}")
    x, total = problem.x0, 0.0
    for s, u in enumerate(actions):
        total += problem.r * float(u @ u)
        x = problem.a @ x + problem.b @ u
        if (s + 1) % problem.block == 0:
            weight = problem.q_final if s + 1 == problem.steps else problem.q
            total += float(x @ weight @ x)
    return total


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


def lifted(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The model-step system x_{t+1} = A^k x_t + [A^{k-1} B, ..., A B, B] U_t."""
    powers = [np.linalg.matrix_power(problem.a, j) for j in range(problem.block + 1)]
    columns = [powers[problem.block - 1 - j] @ problem.b for j in range(problem.block)]
    return powers[problem.block], np.hstack(columns)


def unconstrained_optimum(problem: Problem) -> float:
    """min J without bounds from the Riccati recursion on the lifted system (x_0 term removed)."""
    a, b = lifted(problem)
    control = problem.r * np.eye(b.shape[1])
    _, costs = riccati(a, b, problem.q, control, problem.q_final, problem.horizon)
    x0 = problem.x0
    return float(x0 @ costs[0] @ x0 - x0 @ problem.q @ x0)


class LinearSystem:
    """x' = A x + B u as a ``LatentWorldModel`` (no subclassing): latent = state; one model step
    applies the block's k env actions in sequence."""

    obs_dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, problem: Problem) -> None:
        self.latent_dim, self.action_dim = problem.n, problem.m
        self.action_block = problem.block
        self.obs_shape = (problem.n,)
        self.a = torch.as_tensor(problem.a, dtype=torch.float32)
        self.b = torch.as_tensor(problem.b, dtype=torch.float32)
        self.action_low = torch.as_tensor(problem.low, dtype=torch.float32)
        self.action_high = torch.as_tensor(problem.high, dtype=torch.float32)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        num, horizon = actions.shape[:2]
        env_actions = actions.reshape(num, horizon, self.action_block, self.action_dim)
        states = [z0]  # each (S, n)
        for t in range(horizon):
            x = states[-1]
            for j in range(self.action_block):
                x = x @ self.a.T + env_actions[:, t, j] @ self.b.T
            states.append(x)
        return torch.stack(states, dim=1)  # (S, H+1, n)


class QuadraticCost:
    """The problem's cost J of the state relative to the goal latent, as an ``Energy``."""

    def __init__(self, problem: Problem) -> None:
        self.q = torch.as_tensor(problem.q, dtype=torch.float32)
        self.q_final = torch.as_tensor(problem.q_final, dtype=torch.float32)
        self.r = problem.r

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        error = latents[:, 1:] - goal[:, None]  # (S, H, n)
        running = torch.einsum("sti,ij,stj->s", error[:, :-1], self.q, error[:, :-1])
        terminal = torch.einsum("si,ij,sj->s", error[:, -1], self.q_final, error[:, -1])
        control = self.r * actions.square().sum(dim=(1, 2))  # every env action of every block
        return running + terminal + control  # (S,)


def planners(iterations: int) -> dict[str, Callable[..., lm.Planner]]:
    """Name -> constructor(model, **kwargs); ``iterations > 0`` shrinks every budget."""
    small: dict[str, Any] = {"iterations": iterations} if iterations > 0 else {}
    hybrid_small = {**small, "cem_iterations": iterations} if iterations > 0 else {}
    thirty = small or {"iterations": 30}  # LeWorldModel's rounds
    sampling = {"polish_steps": 0, **thirty}  # 300 x 30, no gradient
    return {
        "CEM (300 x 2 + polish, 4 x 50 L-BFGS)": lambda model, **kw: lm.CEM(model, **small, **kw),
        "CEM, sampling only (300 x 30)": lambda model, **kw: lm.CEM(model, **sampling, **kw),
        "CEM + iCEM options (beta 2, keep 0.3)": lambda model, **kw: lm.CEM(
            model, noise_beta=2.0, keep_elites=0.3, **sampling, **kw
        ),
        "CEM, full covariance": lambda model, **kw: lm.CEM(
            model, covariance="full", **sampling, **kw
        ),
        "CEM 300 x 30 + polish (4 x 50 L-BFGS)": lambda model, **kw: lm.CEM(
            model, polish_steps=POLISH, **thirty, **kw
        ),
        "MPPI (300 x 2 + polish, 4 x 50 L-BFGS)": lambda model, **kw: lm.MPPI(model, **small, **kw),
        "MPPI, sampling only (300 x 30)": lambda model, **kw: lm.MPPI(model, **sampling, **kw),
        "MPPI, full covariance": lambda model, **kw: lm.MPPI(
            model, covariance="full", **sampling, **kw
        ),
        "MPPI 300 x 30 + polish (4 x 50 L-BFGS)": lambda model, **kw: lm.MPPI(
            model, polish_steps=POLISH, **thirty, **kw
        ),
        "CMA-ES (300 generations + polish, 4 x 50 L-BFGS)": lambda model, **kw: lm.CMAES(
            model, **small, **kw
        ),
        "CMA-ES, sampling only": lambda model, **kw: lm.CMAES(model, polish_steps=0, **small, **kw),
        "Gradient": lambda model, **kw: lm.GradientPlanner(model, **small, **kw),
        "Gradient (Adam)": lambda model, **kw: lm.GradientPlanner(
            model, optimizer="adam", **small, **kw
        ),
        "Hybrid (CEM init + gradient)": lambda model, **kw: lm.GradientPlanner.hybrid(
            model, **hybrid_small, **kw
        ),
    }


def solve_family(args: Args) -> tuple[list[Problem], list[np.ndarray], list[float]]:
    """The problems and their verified bounded optima (actions, J*)."""
    problems = [make_problem(index, args.seed) for index in range(args.problems)]
    optima, best = [], []
    for problem in problems:
        actions, value = bounded_optimum(problem)
        simulated = cost(problem, actions)
        if not abs(simulated - value) <= 1e-9 * value:
            raise RuntimeError(
                f"problem {problem.index}: simulated cost {simulated!r} != least-squares "
                f"residual {value!r}"
            )
        if active_bounds(problem, actions) == 0:
            riccati_value = unconstrained_optimum(problem)
            if not abs(riccati_value - value) <= 1e-8 * value:
                raise RuntimeError(
                    f"problem {problem.index}: Riccati optimum {riccati_value!r} != BVLS {value!r}"
                )
        optima.append(actions)
        best.append(value)
    return problems, optima, best


def main(args: Args) -> dict:
    started = time.perf_counter()
    problems, optima, best = solve_family(args)
    rows = []
    for name, make in planners(args.iterations).items():
        ratios, seconds, evals, budget = [], [], [], {}
        for problem, optimum in zip(problems, best, strict=True):
            model, energy = LinearSystem(problem), QuadraticCost(problem)
            planner = make(model, horizon=HORIZON, seed=args.seed, energy=energy)
            budget = {k: v for k, v in asdict(planner.config).items() if k not in NOT_BUDGET}
            planner.reset()
            result = planner.plan(problem.x0.astype(np.float32), np.zeros(problem.n, np.float32))
            actions = np.asarray(result.actions, np.float64).reshape(problem.steps, problem.m)
            ratios.append(cost(problem, actions) / optimum)
            seconds.append(result.solve_s)
            evals.append(result.energy_evals)
        rows.append({
            "planner": name,
            "budget": budget,
            "energy_evals_mean": float(np.mean(evals)),
            "ratio_mean": float(np.mean(ratios)),
            "ratio_max": float(np.max(ratios)),
            "within_5pct": int(np.sum(np.array(ratios) <= 1.05)),
            "ratios": [float(x) for x in ratios],
            "plan_ms_median": 1000 * float(np.median(seconds)),
        })  # fmt: skip
    result = {
        "problem": {
            "family": "seeded linear-quadratic problems, make_problem(index, seed)",
            "cost": "sum_{t=1}^{H-1} x_t'Qx_t + x_H'Q_f x_H + r sum_s u_s'u_s (x_t at model "
            "steps; x_0 term excluded; J(0) = 1)",
            "horizon": HORIZON,
            "seed": args.seed,
            "problems": [
                {
                    "index": p.index,
                    "n": p.n,
                    "m": p.m,
                    "k": p.block,
                    "unstable": p.unstable,
                    "spectral_radius": p.spectral_radius,
                    "target_condition": p.target_condition,
                    "condition": p.condition,
                    "r": p.r,
                    "low": p.low.tolist(),
                    "high": p.high.tolist(),
                    "active_bounds": active_bounds(p, u),
                    "optimal_cost": value,
                }
                for p, u, value in zip(problems, optima, best, strict=True)
            ],
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "lqr" if args.seed == 0 else f"lqr_seed{args.seed}"  # another family: its own file
    write_text_atomic(args.out / f"{name}.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / f"{name}.md", markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    problems = result["problem"]["problems"]
    rows = result["rows"]
    lines = [
        f"LQR family: {len(problems)} seeded linear-quadratic problems (seed "
        f"{result['problem']['seed']}), horizon {result['problem']['horizon']} model steps; "
        "cost ratio = J(plan) / J(exact bounded optimum) (1.000 is optimal).",
        "",
        "| planner (default budget) | energy evals / plan | cost ratio max | cost ratio mean "
        "| problems <= 1.05 | plan time p50 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['planner']} | {row['energy_evals_mean']:,.0f} | {row['ratio_max']:.4f} | "
            f"{row['ratio_mean']:.4f} | {row['within_5pct']}/{len(problems)} | "
            f"{row['plan_ms_median']:.0f} ms |"
        )
    lines += [
        "",
        "| problem | n | m | k | cond | unstable | active bounds | "
        + " | ".join(row["planner"] for row in rows)
        + " |",
        "|---" * (7 + len(rows)) + "|",
    ]
    for i, p in enumerate(problems):
        ratios = " | ".join(f"{row['ratios'][i]:.4f}" for row in rows)
        lines.append(
            f"| {p['index']} | {p['n']} | {p['m']} | {p['k']} | {p['condition']:,.0f} | "
            f"{'yes' if p['unstable'] else 'no'} | {p['active_bounds']} | {ratios} |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
