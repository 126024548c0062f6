"""Cross-entropy method over action sequences (LeWorldModel's planner)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners.base import Optimized, Planner, PlannerConfig


@dataclass(frozen=True)
class CEMConfig(PlannerConfig):
    """CEM knobs (defaults: LeWorldModel's reference budget).

    Attributes:
        num_samples: candidate plans per iteration.
        iterations: refit rounds.
        topk: elites refitting the Gaussian.
        init_std: initial std as a fraction of the half action range.
        min_std: std floor (fraction of the half range), keeps exploring after collapse.
    """

    num_samples: int = 300
    iterations: int = 30
    topk: int = 30
    init_std: float = 1.0
    min_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {self.num_samples}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 1 <= self.topk <= self.num_samples:
            raise ValueError(
                f"topk must be in [1, num_samples={self.num_samples}], got {self.topk}"
            )
        if not self.init_std > 0 or not 0 <= self.min_std <= self.init_std:
            raise ValueError(
                f"need init_std > 0 and 0 <= min_std <= init_std, got {self.init_std}, "
                f"{self.min_std}"
            )


class CEM(Planner):
    """Sample Gaussian plans, keep the ``topk`` best, refit mean and std, repeat.

    The current mean is always one of the candidates, and the best candidate ever scored is
    returned, so the returned energy never gets worse with more iterations.
    """

    config_class = CEMConfig
    config: CEMConfig

    def _optimize(
        self, z0: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor, deadline: float | None
    ) -> Optimized:
        cfg = self.config
        num_envs = z0.shape[0]
        mean = init  # (B, H, block*A)
        std = (cfg.init_std * self.half_range).expand_as(mean).clone()  # (B, H, block*A)
        min_std = cfg.min_std * self.half_range
        best_actions = best_latents = None
        best: ObjectiveValue | None = None
        history = []
        rows = torch.arange(num_envs, device=z0.device)
        iterations = 0
        for _ in range(cfg.iterations):
            noise = torch.randn(
                (num_envs, cfg.num_samples, *mean.shape[1:]),
                generator=self._gen, device=mean.device, dtype=mean.dtype,
            )  # (B, S, H, block*A)  # fmt: skip
            candidates = mean.unsqueeze(1) + std.unsqueeze(1) * noise
            candidates[:, 0] = mean
            candidates = self._clamp(candidates)
            latents, value = self._evaluate(z0, z_goal, candidates)  # (B, S, H+1, D), (B, S)
            order = self._ranking(value)  # (B, S)
            elites = candidates.gather(
                1, order[:, : cfg.topk, None, None].expand(-1, -1, *mean.shape[1:])
            )  # (B, K, H, block*A)
            mean = elites.mean(dim=1)
            std = torch.maximum(elites.std(dim=1, correction=0), min_std)
            # Track the best candidate ever scored.
            top = order[:, 0]  # (B,)
            current = _select(value, rows, top)
            if best is None:
                best_actions, best_latents, best = (
                    candidates[rows, top],
                    latents[rows, top],
                    current,
                )
            else:
                improved = self._better(current, best)
                best_actions = torch.where(
                    improved[:, None, None], candidates[rows, top], best_actions
                )
                best_latents = torch.where(
                    improved[:, None, None], latents[rows, top], best_latents
                )
                best = _merge(improved, current, best)
            history.append(best.total)
            iterations += 1
            if self._time_up(deadline):
                break
        assert best is not None and best_actions is not None and best_latents is not None
        return Optimized(
            actions=best_actions,
            latents=best_latents,
            value=best,
            mean=mean,
            history=torch.stack(history),
            iterations=iterations,
            energy_evals=iterations * cfg.num_samples,
        )


def _select(value: ObjectiveValue, rows: torch.Tensor, index: torch.Tensor) -> ObjectiveValue:
    """Pick one candidate per env: (B, S) tensors -> (B,)."""
    return ObjectiveValue(
        value.total[rows, index],
        value.violation[rows, index],
        {name: term[rows, index] for name, term in value.terms.items()},
    )


def _merge(mask: torch.Tensor, new: ObjectiveValue, old: ObjectiveValue) -> ObjectiveValue:
    """Per-env choice between two (B,) evaluations."""
    return ObjectiveValue(
        torch.where(mask, new.total, old.total),
        torch.where(mask, new.violation, old.violation),
        {name: torch.where(mask, new.terms[name], old.terms[name]) for name in new.terms},
    )
