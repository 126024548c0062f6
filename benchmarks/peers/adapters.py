"""Our side of the peer adapters: what every peer planner sees of our model and energy.

Nothing here imports a peer library, so the default test suite (``tests/test_peer_adapters.py``)
checks it in the main venv. The peer-specific wrappers (``peer_swm.py``, ``peer_mppi.py``,
``peer_torchrl.py``) are thin layers over these pieces:

* :class:`TrajectoryEnergy`: our energy, so a peer optimizes the same objective our planners
  do. Its :meth:`~TrajectoryEnergy.of_plans` rolls whole candidate action sequences out in one
  ``model.rollout`` call (the fused rollout ours and stable-worldmodel's adapter use): the
  pytorch_mppi and torchrl adapters defer the model to the end of their per-step loops and call
  it there (``rollout="fused"``, their default).
* :class:`BlockDynamics`: the predictor's one-block step, for the peers' per-step loops with
  ``rollout="stepped"``. Its state carries the predictor's history window, so stepping it
  reproduces ``model.rollout`` exactly, whatever the history length.
* :class:`PlanScorer`: rolls a peer's returned action sequence out with OUR model and scores it
  with OUR energy (after projecting it on the action bounds, as the env would), so the reported
  plan energies compare like with like.
* :class:`Budget` and :func:`peer_budgets`: the reference budget and each peer's knobs set to it,
  with the mismatches that remain; :meth:`PeerBudget.at` changes a row's iteration count (the
  energy-vs-time sweep), :meth:`PeerBudget.tuned` its other knobs (the tuned rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.energies import Objective
from lewm_mpc.planners.sampling import ROUNDS_BEFORE_POLISH
from lewm_mpc.types import Energy

FAMILIES = ("cem", "mppi", "gradient")
ROLLOUTS = ("fused", "stepped")  # how a per-step peer loop calls the model
LOOP_NOTES = {
    "fused": "its per-step loop only records the action blocks; our energy rolls the whole plan "
    "out in one model.rollout at the last step (fused, as ours)",
    "stepped": "the model stepped one block per step of its loop (embed_actions + predict), not "
    "the fused model.rollout ours uses",
}


class Contender(Protocol):
    """What the runner needs of a planner (ours or a peer's): reseed, and plan from raw
    observations to an action sequence, (H * block, A) or (H, block * A)."""

    def reset(self, seed: int) -> None: ...

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> Any: ...


# --------------------------------------------------------------------------------- dynamics
class BlockDynamics:
    """One model step (one block of ``action_block`` env actions) on a flat state vector.

    ``model.rollout`` predicts ``z_{t+1}`` from the last ``history`` latents and the same number
    of action blocks (fewer at the start of a plan). A one-step dynamics over ``z_t`` alone is
    exact only for ``history == 1``; this one carries the window in its state instead:

        state = [z_{t-h+1}, ..., z_t, a_{t-h+1}, ..., a_{t-1}]   (flattened, h = history)

    so ``state_dim = h * D + (h - 1) * block * A`` (just ``D`` when h = 1), and it needs the step
    index ``t`` to know how much of the window is filled (pytorch_mppi passes it with
    ``step_dependent_dynamics=True``). A model without ``predict``/``embed_actions`` (any other
    :class:`~lewm_mpc.types.LatentWorldModel`) is stepped with a one-block ``rollout``, which is
    exact only for a Markov model.

    Args:
        model: the world model.
    """

    def __init__(self, model: lm.LatentWorldModel) -> None:
        self.model = model
        self.history = int(getattr(model, "history", 1))
        self.latent_dim = model.latent_dim
        self.block_dim = model.action_block * model.action_dim
        self._windowed = hasattr(model, "predict") and hasattr(model, "embed_actions")

    @property
    def state_dim(self) -> int:
        """Length of the flat state vector."""
        return self.history * self.latent_dim + (self.history - 1) * self.block_dim

    def initial_state(self, z0: torch.Tensor) -> torch.Tensor:
        """(N, D) start latents -> (N, state_dim) states (window filled with z0, no actions)."""
        num = z0.shape[0]
        window = z0.unsqueeze(1).expand(num, self.history, self.latent_dim)  # (N, h, D)
        past = z0.new_zeros(num, (self.history - 1) * self.block_dim)  # (N, (h-1) * bA)
        return torch.cat([window.reshape(num, -1), past], dim=1)

    def latent(self, state: torch.Tensor) -> torch.Tensor:
        """(..., state_dim) states -> (..., D) current latents z_t."""
        end = self.history * self.latent_dim
        return state[..., end - self.latent_dim : end]

    def next_latent(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predict z_{t+1} from a context window.

        Args:
            latents: (N, c, D) the last c <= history latents, z_t last.
            actions: (N, c, block * A) their action blocks, a_t last.

        Returns:
            (N, D) the next latent, as ``model.rollout`` computes it.
        """
        if not self._windowed:
            return self.model.rollout(latents[:, -1], actions[:, -1:])[:, 1]  # (N, D)
        embedded = self.model.embed_actions(actions)  # (N, c, E)
        return self.model.predict(latents, embedded)[:, -1]  # (N, D)

    def __call__(self, state: torch.Tensor, action: torch.Tensor, t: int = 0) -> torch.Tensor:
        """Step the flat state.

        Args:
            state: (N, state_dim) states at step t.
            action: (N, block * A) env-space action blocks a_t.
            t: index of this step in the plan (0 for the first block).

        Returns:
            (N, state_dim) states at step t + 1.
        """
        num, h, dim = state.shape[0], self.history, self.latent_dim
        window = state[:, : h * dim].reshape(num, h, dim)  # (N, h, D)
        past = state[:, h * dim :].reshape(num, h - 1, self.block_dim)  # (N, h-1, bA)
        actions = torch.cat([past, action.unsqueeze(1)], dim=1)  # (N, h, bA)
        filled = min(t + 1, h)
        z_next = self.next_latent(window[:, h - filled :], actions[:, h - filled :])  # (N, D)
        window = torch.cat([window[:, 1:], z_next.unsqueeze(1)], dim=1)  # (N, h, D)
        return torch.cat([window.reshape(num, -1), actions[:, 1:].reshape(num, -1)], dim=1)

    def step_trajectory(
        self, latents: torch.Tensor, actions: torch.Tensor, action: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step whole-trajectory buffers (the form an env keeps, e.g. for torchrl).

        Args:
            latents: (N, H+1, D) latents so far (entries after t unused).
            actions: (N, H, block * A) action blocks so far (entries from t on unused).
            action: (N, block * A) action block a_t.
            t: index of this step.

        Returns:
            New (not in-place) buffers with ``actions[:, t] = action`` and ``latents[:, t+1]``
            predicted.
        """
        actions = actions.clone()
        actions[:, t] = action
        start = max(0, t + 1 - self.history)
        z_next = self.next_latent(latents[:, start : t + 1], actions[:, start : t + 1])
        latents = latents.clone()
        latents[:, t + 1] = z_next
        return latents, actions


# ---------------------------------------------------------------------------------- energy
class TrajectoryEnergy:
    """Our objective over whole candidate plans, or over a trajectory a peer stepped.

    Args:
        dynamics: the model's one-block step (its model rolls plans out; its flat states are
            what :meth:`of_states` reads latents from).
        energy: task energy (default ``lm.GoalDistance()``, as our planners).
    """

    def __init__(self, dynamics: BlockDynamics, energy: Energy | None = None) -> None:
        self.dynamics = dynamics
        self.objective = Objective(energy)

    def of_plans(self, z0: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Energy of whole plans, rolled out in one ``model.rollout`` call (fused when the
        model is).

        Args:
            z0: (D,), (1, D) or (N, D) start latent(s).
            actions: (N, H, bA) env-space action blocks.
            goal: (D,), (1, D) or (N, D) goal latent(s).

        Returns:
            (N,) energies.
        """
        num = actions.shape[0]
        start = z0.reshape(-1, z0.shape[-1]).expand(num, -1).contiguous()  # (N, D)
        latents = self.dynamics.model.rollout(start, actions)  # (N, H+1, D)
        return self.of_latents(latents, actions, goal)

    def of_latents(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        """(N, H+1, D) latents, (N, H, bA) actions, (N, D) or (D,) goal -> (N,) energies."""
        goal = goal.reshape(-1, goal.shape[-1]).expand(latents.shape[0], -1)  # (N, D)
        return self.objective(latents, actions, goal).total

    def of_states(
        self, z0: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        """Energy of flat-state trajectories.

        Args:
            z0: (D,) or (1, D) start latent.
            states: (N, H, state_dim) states after each step (pytorch_mppi's ``states``).
            actions: (N, H, bA) the action blocks.
            goal: (D,) or (1, D) goal latent.

        Returns:
            (N,) energies.
        """
        num = states.shape[0]
        start = z0.reshape(1, 1, -1).expand(num, 1, -1)  # (N, 1, D)
        latents = torch.cat([start, self.dynamics.latent(states)], dim=1)  # (N, H+1, D)
        return self.of_latents(latents, actions, goal)


# ---------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ScoredPlan:
    """A plan scored with our model and energy.

    Attributes:
        energy: our energy of the plan (after projecting it on the bounds).
        out_of_bounds: fraction of action entries the peer returned outside the bounds.
        actions: (H, block * A) the projected plan.
    """

    energy: float
    out_of_bounds: float
    actions: np.ndarray


class PlanScorer:
    """Encodes start/goal and scores action sequences with OUR rollout and OUR energy.

    Args:
        model: the world model every planner shares.
        energy: task energy (default ``lm.GoalDistance()``).
    """

    def __init__(self, model: lm.LatentWorldModel, energy: Energy | None = None) -> None:
        self.model = model
        self.objective = Objective(energy)
        block = model.action_block
        self.low = model.action_low.float().repeat(block)  # (block * A,)
        self.high = model.action_high.float().repeat(block)
        self.block_dim = block * model.action_dim

    def encode(self, obs: Any, goal: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw observations (as ``planner.plan`` takes them) -> (1, D) start and goal latents."""
        tensors = [torch.as_tensor(np.asarray(x)) for x in (obs, goal)]
        dtype = getattr(self.model, "obs_dtype", torch.float32)
        batch = torch.stack(tensors).to(device=self.model.device, dtype=dtype)  # (2, *obs)
        with torch.inference_mode():
            z = self.model.encode(batch)  # (2, D)
        return z[:1].clone(), z[1:].clone()

    def as_blocks(self, actions: Any) -> torch.Tensor:
        """A plan as (H * block, A) env actions or (H, block * A) blocks -> (H, block * A)."""
        plan = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        if plan.ndim == 3 and plan.shape[0] == 1:
            plan = plan[0]
        if plan.ndim != 2 or plan.numel() % self.block_dim:
            raise ValueError(
                f"a plan must be (H * action_block, action_dim) or (H, action_block * "
                f"action_dim) = (H, {self.block_dim}), got shape {tuple(plan.shape)}"
            )
        return plan.reshape(-1, self.block_dim)  # (H, bA)

    def score(self, z0: torch.Tensor, z_goal: torch.Tensor, actions: Any) -> ScoredPlan:
        """Our energy of one plan from ``z0`` toward ``z_goal``.

        Args:
            z0: (1, D) or (D,) start latent.
            z_goal: (1, D) or (D,) goal latent.
            actions: the plan, (H * block, A) or (H, block * A), numpy or torch.

        Returns:
            The plan's energy after projection on the bounds, and how much was projected.
        """
        plan = self.as_blocks(actions).to(self.model.device)  # (H, bA)
        outside = ((plan < self.low) | (plan > self.high)).float().mean().item()
        plan = torch.maximum(torch.minimum(plan, self.high), self.low)
        with torch.inference_mode():
            latents = self.model.rollout(z0.reshape(1, -1), plan.unsqueeze(0))  # (1, H+1, D)
            value = self.objective(latents, plan.unsqueeze(0), z_goal.reshape(1, -1))
        return ScoredPlan(float(value.total[0]), outside, plan.cpu().numpy())


# ---------------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """The compute budget every planner gets (LeWorldModel's reference by default).

    Attributes:
        horizon: planned blocks (of ``action_block`` env actions).
        num_samples: candidates per iteration (sampling planners).
        iterations: iterations (sampling planners).
        topk: elites (CEM; also stable-worldmodel's MPPI, which weighs only its top k).
        grad_restarts: action sequences optimized in parallel (gradient planners).
        grad_iterations: gradient steps.
        grad_lr: gradient step size (Adam), in units of the half action range.
        mppi_lambda: pytorch_mppi's absolute temperature (it has no relative one).
        mppi_noise_sigma: pytorch_mppi's fixed noise std, as a fraction of the half range.
        swm_mppi_temperature: stable-worldmodel MPPI's absolute temperature (its default 0.5).
        polish_steps: L-BFGS evaluations after the sampling rounds in our "+polish" and
            "default" rows (``polish_steps`` of our sampling planners; the most the "default"
            rows' sweep reaches).
    """

    horizon: int = 5
    num_samples: int = 300
    iterations: int = 30
    topk: int = 30
    grad_restarts: int = 8
    grad_iterations: int = 100
    grad_lr: float = 0.1
    mppi_lambda: float = 1.0
    mppi_noise_sigma: float = 1.0
    swm_mppi_temperature: float = 0.5
    polish_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("horizon", "num_samples", "iterations", "grad_restarts", "grad_iterations",
                     "polish_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.topk <= self.num_samples:
            raise ValueError(
                f"topk must be in [1, num_samples={self.num_samples}], got {self.topk}"
            )
        for name in ("grad_lr", "mppi_lambda", "mppi_noise_sigma", "swm_mppi_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def sampling_evals(self) -> int:
        """Candidate plans a sampling planner scores per plan."""
        return self.num_samples * self.iterations

    @property
    def gradient_evals(self) -> int:
        """Forward+backward evaluations a gradient planner makes per plan."""
        return self.grad_restarts * self.grad_iterations


@dataclass(frozen=True)
class PeerBudget:
    """One planner's knobs at the shared budget.

    Attributes:
        name: row name in the results ("<library>/<planner>", " tuned" appended for a tuned row).
        family: "cem", "mppi" or "gradient": whose latency it is compared with.
        kwargs: the planner's own constructor arguments that carry the budget.
        energy_evals: candidate plans scored per plan (a gradient step counts one per restart).
        notes: what could not be matched, in words.
        iterations_key: the ``kwargs`` entry holding the iteration (or gradient step) count,
            the one the energy-vs-time sweep varies (``polish_steps`` for our planners at
            their defaults).
        fixed_evals: the part of ``energy_evals`` that does not scale with it (the sampling
            rounds before a polish whose length is swept).
    """

    name: str
    family: str
    kwargs: Mapping[str, Any]
    energy_evals: int
    notes: tuple[str, ...] = ()
    iterations_key: str = "iterations"
    fixed_evals: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")

    @property
    def library(self) -> str:
        """ "ours", "swm", "pytorch_mppi" or "torchrl"."""
        return self.name.split(" ")[0].partition("/")[0]

    @property
    def kind(self) -> str:
        """The planner within its library: ``CEM``, ``MPPI`` or ``gradient``."""
        return self.name.split(" ")[0].partition("/")[2]

    @property
    def iterations(self) -> int:
        """Iterations (gradient steps) per plan."""
        return int(self.kwargs[self.iterations_key])

    def at(self, iterations: int) -> PeerBudget:
        """The same planner with ``iterations`` iterations (steps), as the sweep runs it."""
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        per_iteration = (self.energy_evals - self.fixed_evals) // self.iterations
        kwargs = {**self.kwargs, self.iterations_key: iterations}
        return replace(self, kwargs=kwargs,
                       energy_evals=self.fixed_evals + per_iteration * iterations)  # fmt: skip

    def variant(self, suffix: str, overrides: Mapping[str, Any], note: str) -> PeerBudget:
        """The row ``"<name> <suffix>"``: ``overrides`` (not the budget) in its kwargs."""
        unknown = set(overrides) - set(self.kwargs)
        if unknown or self.iterations_key in overrides:
            raise ValueError(f"{self.name}: cannot vary {sorted(overrides)} (a budget knob?)")
        return replace(
            self,
            name=f"{self.name} {suffix}",
            kwargs={**self.kwargs, **overrides},
            notes=(*self.notes, note),
        )

    def tuned(self, overrides: Mapping[str, Any]) -> PeerBudget:
        """The row ``"<name> tuned"`` with ``overrides`` (not the budget) in its kwargs."""
        settings = ", ".join(f"{k}={v}" for k, v in overrides.items())
        return self.variant("tuned", overrides, f"tuned on separate pairs: {settings}")

    def stepped(self) -> PeerBudget:
        """The row ``"<name> stepped"``: the model stepped block by block in the peer's loop
        (what the fused rollout saves)."""
        row = self.variant("stepped", {"rollout": "stepped"}, LOOP_NOTES["stepped"])
        return replace(row, notes=tuple(n for n in row.notes if n != LOOP_NOTES["fused"]))

    @property
    def base(self) -> str:
        """The default row's name (without a variant's suffix)."""
        return self.name.split(" ")[0]

    @property
    def variant_name(self) -> str:
        """``""`` for a default row, else its suffix (``"tuned"``, ``"stepped"``)."""
        return self.name.partition(" ")[2]


def peer_budgets(budget: Budget, rollout: str = "fused") -> dict[str, PeerBudget]:
    """Every planner of the comparison, ours and the peers', set to ``budget``.

    Args:
        budget: the shared budget.
        rollout: how pytorch_mppi's and torchrl's per-step loops call the model: ``"fused"``
            (the whole plan in one ``model.rollout`` at the end of the loop, as ours and
            stable-worldmodel's adapter do) or ``"stepped"`` (one predictor step per block).
    """
    if rollout not in ROLLOUTS:
        raise ValueError(f"rollout must be one of {ROLLOUTS}, got {rollout!r}")
    b = budget
    sampling_note = "returns its final mean, not the best candidate scored (ours returns that)"
    ours_note = "the planner's defaults besides the budget (its config is in peers.json)"
    restarts, rounds = lm.CEMConfig.polish_restarts, ROUNDS_BEFORE_POLISH
    descents = (f"{restarts} descents in one batch: from the best plan sampled and from "
                f"{restarts - 1} perturbations of it by the last sampling distribution's "
                "spread")  # fmt: skip
    polish_note = (
        f"then at most {b.polish_steps} L-BFGS evaluations (each the rollout forward and "
        f"backward of {descents}), on top of the evals/plan"
    )
    default_note = (
        f"our planner at its defaults besides samples, horizon and top k: {rounds} sampling "
        f"rounds, then at most `polish_steps` L-BFGS evaluations of {descents}; the sweep "
        "varies the polish length"
    )
    loop_note = LOOP_NOTES[rollout]
    rows = [
        PeerBudget("ours/CEM", "cem", dict(horizon=b.horizon, num_samples=b.num_samples,
                   iterations=b.iterations, topk=b.topk, polish_steps=0), b.sampling_evals,
                   (ours_note, "returns the best candidate ever scored")),
        PeerBudget("ours/MPPI", "mppi", dict(horizon=b.horizon, num_samples=b.num_samples,
                   iterations=b.iterations, polish_steps=0), b.sampling_evals,
                   (ours_note, "temperature relative to the energy spread (default 0.1), all "
                    "candidates weighted, spread refitted each iteration",)),
        PeerBudget("ours/CEM+polish", "cem", dict(horizon=b.horizon, num_samples=b.num_samples,
                   iterations=b.iterations, topk=b.topk, polish_steps=b.polish_steps),
                   b.sampling_evals, (ours_note, polish_note)),
        PeerBudget("ours/MPPI+polish", "mppi", dict(horizon=b.horizon,
                   num_samples=b.num_samples, iterations=b.iterations,
                   polish_steps=b.polish_steps), b.sampling_evals,
                   (ours_note, polish_note)),
        PeerBudget("ours/CEM default", "cem", dict(horizon=b.horizon,
                   num_samples=b.num_samples, topk=b.topk, polish_steps=b.polish_steps),
                   b.num_samples * rounds + restarts * b.polish_steps, (default_note,),
                   "polish_steps", b.num_samples * rounds),
        PeerBudget("ours/MPPI default", "mppi", dict(horizon=b.horizon,
                   num_samples=b.num_samples, polish_steps=b.polish_steps),
                   b.num_samples * rounds + restarts * b.polish_steps, (default_note,),
                   "polish_steps", b.num_samples * rounds),
        PeerBudget("ours/gradient", "gradient", dict(horizon=b.horizon, restarts=b.grad_restarts,
                   iterations=b.grad_iterations, lr=b.grad_lr), b.gradient_evals,
                   (ours_note, "projected on the bounds; may stop before its last step once "
                    "converged")),
        PeerBudget("swm/CEM", "cem", dict(num_samples=b.num_samples, n_steps=b.iterations,
                   topk=b.topk, var_scale=1.0), b.sampling_evals,
                   (sampling_note, "samples are not projected on the bounds by the solver: the "
                    "adapter clamps them before the rollout, as the env would",
                    "no std floor (ours: 2% of the half range)"), "n_steps"),
        PeerBudget("swm/MPPI", "mppi", dict(num_samples=b.num_samples, n_steps=b.iterations,
                   topk=b.topk, var_scale=1.0, temperature=b.swm_mppi_temperature),
                   b.sampling_evals,
                   (sampling_note, "absolute temperature, softmax over its top k only, fixed "
                    "std; the adapter clamps samples before the rollout",), "n_steps"),
        PeerBudget("swm/gradient", "gradient", dict(num_samples=b.grad_restarts,
                   n_steps=b.grad_iterations, var_scale=0.5, optimizer="Adam", lr=b.grad_lr),
                   b.gradient_evals,
                   ("Adam at ours' lr (its default is SGD, lr 1), constant step; actions not "
                    "projected on the bounds during the descent (the adapter clamps them inside "
                    "the cost, so the gradient is zero outside); returns the last iterate of "
                    "the best restart",), "n_steps"),
        PeerBudget("pytorch_mppi/MPPI", "mppi", dict(num_samples=b.num_samples,
                   horizon=b.horizon, commands=b.iterations, noise_sigma=b.mppi_noise_sigma,
                   lambda_=b.mppi_lambda, rollout=rollout), b.sampling_evals,
                   ("one sampling round per command(): the adapter calls command("
                    "shift_nominal_trajectory=False) `iterations` times on one nominal plan",
                    "absolute temperature lambda_, fixed noise, no top k; adds its "
                    "perturbation cost lambda * U^T Sigma^-1 noise to our energy",
                    "uses torch's global RNG (seeded before each plan)", loop_note), "commands"),
        PeerBudget("torchrl/CEM", "cem", dict(planning_horizon=b.horizon,
                   optim_steps=b.iterations, num_candidates=b.num_samples, top_k=b.topk,
                   rollout=rollout), b.sampling_evals,
                   (sampling_note, "returns only the first action: the adapter recovers the "
                    "final mean from the last iteration's candidates and returns (checked "
                    "against the first action it returns)", "no std floor; torch's global RNG",
                    "our energy given as a reward at the last step of its env rollout",
                    loop_note), "optim_steps"),
    ]  # fmt: skip
    return {row.name: row for row in rows}
