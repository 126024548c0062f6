"""Stage timers for one plan and a grad-mode switch, used by ``efficiency.py``.

The timers wrap each stage's function on the planner instance (and CEM's sampler and
``BestSoFar.update``) and restore them on exit; nothing in the library is changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from _machine import synchronize

import lewm_mpc as lm
from lewm_mpc.planners import base as planner_base
from lewm_mpc.planners import cem as cem_module


class StageTimer:
    """Wall-clock totals per stage, accumulated by wrapped functions (synchronizing on GPUs)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            synchronize(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(self.device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
            return out

        return timed


class _TimedObjective:
    """Stands in for ``planner.objective``: times calls, forwards everything else."""

    def __init__(self, objective: Any, timed_call: Callable[..., Any]) -> None:
        self._objective, self._timed_call = objective, timed_call

    def __call__(self, *args: Any) -> Any:
        return self._timed_call(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objective, name)


@contextlib.contextmanager
def instrumented(planner: lm.CEM, timer: StageTimer) -> Iterator[None]:
    """Wrap each stage's function of ``planner`` (and CEM's sampler) in ``timer``."""
    model, objective = planner.model, planner.objective
    saved_noise, saved_update = cem_module._sample_noise, planner_base.BestSoFar.update
    model.encode = timer.wrap("encoding", model.encode)
    model.rollout = timer.wrap("rollout", model.rollout)
    planner.objective = _TimedObjective(objective, timer.wrap("energy", objective.__call__))  # type: ignore[assignment]
    planner._as_batch = timer.wrap("input checks", planner._as_batch)  # type: ignore[method-assign]
    planner._clamp = timer.wrap("sampling", planner._clamp)  # type: ignore[method-assign]
    cem_module._sample_noise = timer.wrap("sampling", saved_noise)
    planner._ranking = timer.wrap("ranking/update", planner._ranking)  # type: ignore[method-assign]
    planner_base.BestSoFar.update = timer.wrap("ranking/update", saved_update)  # type: ignore[method-assign]
    planner._package = timer.wrap("result packaging", planner._package)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name in ("encode", "rollout"):
            delattr(model, name)
        for name in ("_as_batch", "_clamp", "_ranking", "_package"):
            delattr(planner, name)
        planner.objective = objective
        cem_module._sample_noise = saved_noise
        planner_base.BestSoFar.update = saved_update  # type: ignore[method-assign]


@contextlib.contextmanager
def no_grad_instead_of_inference_mode() -> Iterator[None]:
    """Make the planner's ``torch.inference_mode()`` blocks plain ``torch.no_grad()``."""
    original = torch.inference_mode

    def replacement(mode: bool = True) -> Any:
        return torch.no_grad() if mode else contextlib.nullcontext()

    torch.inference_mode = replacement  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        torch.inference_mode = original  # type: ignore[misc]
