"""The fused rollout's weights as constants: a cache of them per model, and the hint that
a rollout is differentiated with respect to its inputs only (:mod:`lewm_mpc.models.fused_rollout`
then runs its hand-written backward)."""

from __future__ import annotations

import contextlib
import dataclasses
import operator
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from lewm_mpc.models.fused_rollout import FusedMLPStep, fuse_mlp_step, map_tensors

_INPUTS_ONLY: ContextVar[bool] = ContextVar("lewm_mpc_input_gradients_only", default=False)


@contextlib.contextmanager
def input_gradients_only() -> Iterator[None]:
    """Declare that rollouts inside this block (this thread) are differentiated with respect
    to their inputs only (start latents, actions, past latents), as gradient planners do.

    The residual-MLP rollout then treats its predictor's weights as constants, even ones with
    ``requires_grad``: cached weights and the hand-written backward. Whether a parameter still
    receives a gradient inside the block is unspecified; the inputs' gradients are exact.
    """
    token = _INPUTS_ONLY.set(True)
    try:
        yield
    finally:
        _INPUTS_ONLY.reset(token)


class FusedStepCache:
    """The fused step of one predictor / projector pair, rebuilt when any of their parameters
    or buffers changes (in place, which bumps its version, or replaced), or their mode does.

    Only constant weights are cached (built without autograd); :meth:`get` derives
    differentiable ones afresh when gradients may have to reach the parameters.
    """

    def __init__(self) -> None:
        self._sources: list[torch.Tensor] = []  # kept: a freed tensor's address is never reused
        self._state: tuple[Any, ...] | None = None  # modes, then each source's version, address
        self._step: FusedMLPStep | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # a copy or a pickle starts empty: its weights are rebuilt on first use

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def get(self, predictor: nn.Module, projector: nn.Module) -> FusedMLPStep | None:
        """The fused step (None for a layout :func:`fuse_mlp_step` does not fuse)."""
        sources = [*predictor.parameters(), *projector.parameters(), *projector.buffers()]
        differentiable = torch.is_grad_enabled() and not _INPUTS_ONLY.get()
        if differentiable and any(tensor.requires_grad for tensor in sources):
            return fuse_mlp_step(predictor, projector)
        try:
            state = (predictor.training, projector.training,
                     *((t._version, t.data_ptr()) for t in sources))  # fmt: skip
        except RuntimeError:  # inference tensors track no version: nothing to key on
            return _detached_step(predictor, projector)
        same = len(sources) == len(self._sources) and all(map(operator.is_, sources, self._sources))
        if not same or state != self._state:
            self._step = _detached_step(predictor, projector)
            self._sources, self._state = sources, state
        return self._step


def _detached_step(predictor: nn.Module, projector: nn.Module) -> FusedMLPStep | None:
    """The step as constants (its layer norms' parameters included: the caller either wants
    no parameter gradient or has none to give)."""
    # Built outside inference mode: the weights may later meet autograd (a gradient planner).
    with torch.inference_mode(False), torch.no_grad():
        step = fuse_mlp_step(predictor, projector, contiguous=True)
    if step is None:
        return None
    return dataclasses.replace(map_tensors(step, torch.Tensor.detach), constant=True)
