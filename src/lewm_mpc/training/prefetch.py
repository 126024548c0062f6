"""The next training batch, drawn in a background thread while the current step runs.

On a GPU, gathering a batch of frames on the CPU (``WindowSampler.sample``) and copying it to
the device take a third of a ``paper``-config step when they wait for each other
(``benchmarks/train_step_profile.py``). :class:`Prefetcher` draws batch ``k + 1`` while step
``k`` computes and pins it, so the copy is asynchronous. The batches and their order are the
sampler's own: a run trains bit for bit the same with or without it, and a checkpoint records
the sampler's state *before* the batch drawn ahead (:meth:`Prefetcher.sampler_state`), so a
resumed run draws that batch again.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lewm_mpc.data import WindowSampler


@dataclass(frozen=True)
class Drawn:
    """A drawn batch: its windows' dataset rows, and its frames and actions as tensors
    (pinned when they go to a GPU)."""

    obs: torch.Tensor  # (B, T, ...) as the sampler returns them
    actions: torch.Tensor  # (B, T, block * A)
    rows: np.ndarray  # (B,) first row of each window
    symmetry: np.ndarray | None = None  # (B,) symmetry index of each window, if augmented


def _draw(sampler: WindowSampler, pin: bool) -> Drawn:
    batch = sampler.sample()
    obs, actions = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
    if pin:
        obs, actions = obs.pin_memory(), actions.pin_memory()
    return Drawn(obs, actions, batch.rows, batch.symmetry)


class Prefetcher:
    """Draws a sampler's batches one ahead in a worker thread (``enabled``), or on demand.

    Args:
        enabled: draw ahead; off, :meth:`next` samples when called (nothing runs meanwhile).
        pin: pin the tensors drawn ahead (for asynchronous copies to a GPU).
    """

    def __init__(self, enabled: bool, pin: bool = False) -> None:
        self.enabled, self.pin = enabled, pin
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Drawn] | None = None
        self._sampler: WindowSampler | None = None  # the one ``_pending`` draws from
        self._state_before: dict[str, Any] | None = None  # its state before that draw

    def next(self, sampler: WindowSampler) -> Drawn:
        """The sampler's next batch; when enabled, the one after it starts drawing."""
        if not self.enabled:  # nothing overlaps the copy: pinning would only add one
            return _draw(sampler, pin=False)
        if self._pending is not None and self._sampler is sampler:
            drawn = self._pending.result()
        else:  # the first batch, or the sampler was replaced (a resume)
            self.discard()
            drawn = _draw(sampler, self.pin)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lewm-prefetch")
        self._sampler, self._state_before = sampler, sampler.state_dict()
        self._pending = self._pool.submit(_draw, sampler, self.pin)
        return drawn

    def sampler_state(self, sampler: WindowSampler) -> dict[str, Any]:
        """The sampler's state as if nothing had been drawn ahead (what a checkpoint saves)."""
        if self._pending is not None and self._sampler is sampler:
            assert self._state_before is not None
            return self._state_before
        return sampler.state_dict()

    def discard(self) -> None:
        """Drop the batch drawn ahead, after its draw is done (the sampler then stands one
        batch further; whoever discards restores or replaces it)."""
        if self._pending is not None:
            self._pending.result()
        self._pending = self._sampler = self._state_before = None

    def close(self) -> None:
        """Wait for a draw in flight and stop the worker thread."""
        self.discard()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
