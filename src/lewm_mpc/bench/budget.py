"""The per-plan budget every planner of a comparison shares, and the planners built at it.

Energy evaluations (candidate plans rolled out and scored) per plan: CEM and MPPI spend
``samples x iterations``, gradient shooting up to ``restarts x steps`` (each step also
back-propagates; it stops earlier once converged, and reports what it spent), the hybrid
``cem_iterations x samples`` of CEM then up to ``restarts x steps`` of gradient steps; a
user-registered sampling planner (config subclassing ``SamplingConfig``) spends
``samples x iterations`` like CEM and MPPI. :class:`Budget` refuses a budget that these cannot
split exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lewm_mpc.energies import Guardrail
from lewm_mpc.planners import GradientPlanner, Planner, PlannerEntry, SamplingConfig, registry
from lewm_mpc.types import Energy, LatentWorldModel

# Display names (as results files spell them) -> planner registry names.
REGISTRY_NAMES: dict[str, str] = {
    "CEM": "cem",
    "MPPI": "mppi",
    "Gradient": "gradient",
    "Hybrid": "hybrid",
}
PLANNERS: tuple[str, ...] = tuple(REGISTRY_NAMES)


@dataclass(frozen=True)
class Budget:
    """Per-plan budget shared by every planner of a job's mode.

    Attributes:
        evals: energy evaluations (candidate plans scored) per plan.
        samples: candidates per CEM/MPPI iteration (also the hybrid's CEM stage).
        restarts: parallel action sequences of gradient shooting (and of the hybrid).
        hybrid_cem_iterations: CEM iterations of the hybrid before its gradient steps.
        horizon: planned blocks.
        receding_horizon: blocks executed per plan.
        deadline_s: per-plan wall-clock deadline (equal-time mode), None for none.
    """

    evals: int = 9000
    samples: int = 300
    restarts: int = 30
    hybrid_cem_iterations: int = 10
    horizon: int = 5
    receding_horizon: int = 1
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("evals", "samples", "restarts", "hybrid_cem_iterations", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"budget {name} must be >= 1, got {getattr(self, name)}")
        if self.samples < 2:
            raise ValueError(f"budget samples must be >= 2 (CEM/MPPI), got {self.samples}")
        if not 1 <= self.receding_horizon <= self.horizon:
            raise ValueError(
                f"receding_horizon must be in [1, horizon={self.horizon}], "
                f"got {self.receding_horizon}"
            )
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 seconds or None, got {self.deadline_s}")
        if self.evals % self.samples:
            raise ValueError(
                f"budget of {self.evals} evaluations is not a multiple of samples="
                f"{self.samples} (CEM/MPPI run samples x iterations); pick a multiple"
            )
        if self.evals % self.restarts:
            raise ValueError(
                f"budget of {self.evals} evaluations is not a multiple of restarts="
                f"{self.restarts} (gradient shooting runs restarts x steps); pick a multiple"
            )
        rest = self.evals - self.hybrid_cem_iterations * self.samples
        if rest <= 0 or rest % self.restarts:
            raise ValueError(
                f"the hybrid's CEM stage ({self.hybrid_cem_iterations} x {self.samples}) must "
                f"leave a positive multiple of restarts={self.restarts} of the {self.evals} "
                f"evaluations for its gradient steps; it leaves {rest}"
            )

    @property
    def iterations(self) -> int:
        """CEM/MPPI iterations: ``evals / samples``."""
        return self.evals // self.samples

    @property
    def topk(self) -> int:
        """CEM elites: a tenth of the samples (LeWorldModel's 30 of 300)."""
        return max(1, self.samples // 10)

    @property
    def gradient_steps(self) -> int:
        """Gradient steps of gradient shooting (at most): ``evals / restarts``."""
        return self.evals // self.restarts

    @property
    def hybrid_steps(self) -> int:
        """Gradient steps of the hybrid after its CEM stage (at most)."""
        return (self.evals - self.hybrid_cem_iterations * self.samples) // self.restarts


def make_planner(
    name: str,
    model: LatentWorldModel,
    budget: Budget,
    seed: int,
    energy: Energy | None = None,
    guardrails: Sequence[Guardrail] = (),
) -> Planner:
    """A planner configured to spend exactly ``budget.evals`` per plan.

    Args:
        name: "CEM", "MPPI", "Gradient" or "Hybrid", or a registry name (any case) of a
            planner whose config subclasses :class:`~lewm_mpc.planners.SamplingConfig`.
        model: the world model.
        budget: the per-plan budget.
        seed: the planner's generator seed.
        energy: task energy (None: the planners' default latent goal distance).
        guardrails: guardrail energies added to the task energy.

    Raises:
        ValueError: an unknown name, or a planner whose budget bench cannot split.
    """
    entry = registry.get_planner_entry(REGISTRY_NAMES.get(name, name))
    return registry.make_planner(
        entry.name,
        model,
        **_budget_fields(entry)(budget),
        seed=seed,
        guardrails=list(guardrails),
        energy=energy,
        horizon=budget.horizon,
        receding_horizon=budget.receding_horizon,
    )


def bench_name(name: str) -> str:
    """The name a sweep records for planner ``name`` (any case): a built-in's display name
    (``"cem"`` -> ``"CEM"``), else the registry name of a sampling planner.

    Raises:
        ValueError: an unknown name (listing the known ones), or a planner whose evaluation
            budget bench cannot split.
    """
    key = name.strip().lower()
    for display, registered in REGISTRY_NAMES.items():
        if key in (display.lower(), registered):
            return display
    entry = registry.get_planner_entry(key)
    _budget_fields(entry)
    return entry.name


def _sampling_fields(budget: Budget) -> dict[str, Any]:
    # exactly ``evals`` per plan: sampling alone, no gradient polish
    return {"num_samples": budget.samples, "iterations": budget.iterations, "polish_steps": 0}


# Config fields that make each planner spend ``budget.evals`` per plan (gradient planners at
# most: they stop on convergence).
_BUDGET_FIELDS: dict[str, Callable[[Budget], dict[str, Any]]] = {
    "cem": lambda b: {**_sampling_fields(b), "topk": b.topk},
    "mppi": _sampling_fields,
    "gradient": lambda b: {"restarts": b.restarts, "iterations": b.gradient_steps},
    "hybrid": lambda b: {
        "restarts": b.restarts,
        "iterations": b.hybrid_steps,
        "cem_iterations": b.hybrid_cem_iterations,
        "cem_samples": b.samples,
        "cem_topk": b.topk,
    },
}


def _budget_fields(entry: PlannerEntry) -> Callable[[Budget], dict[str, Any]]:
    """How a budget sets ``entry``'s config: a built-in's own split, else ``samples x
    iterations`` for any sampling planner (its config subclasses ``SamplingConfig``)."""
    if entry.name in _BUDGET_FIELDS:
        return _BUDGET_FIELDS[entry.name]
    if issubclass(entry.config_class, SamplingConfig):
        return _sampling_fields
    raise ValueError(
        f"planner {entry.name!r} ({entry.config_class.__name__}): bench can only split the "
        "evaluation budget for sampling planners (config subclassing SamplingConfig: "
        f"num_samples x iterations) and the built-ins {list(PLANNERS)}"
    )


def configured_evals(planner: Planner) -> int:
    """Energy evaluations per plan the planner is configured for (when no deadline or, for
    gradient shooting, convergence stops it earlier)."""
    cfg: Any = planner.config
    if isinstance(planner, GradientPlanner):
        return cfg.restarts * cfg.iterations + cfg.cem_iterations * cfg.cem_samples
    polishing = planner.needs_grad  # a sampling planner that polishes (at most polish_steps)
    polish = cfg.polish_steps * cfg.polish_restarts if polishing else 0
    return cfg.num_samples * cfg.rounds(polishing) + polish
