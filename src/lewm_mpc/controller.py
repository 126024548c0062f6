"""An MPC controller a robot loop can call once per control period.

``MPCController.act(obs)`` returns one env action per call from a queue of planned actions and
replans every ``replan_every`` actions. Synchronous, a replan blocks the call. Asynchronous, a
background thread plans the next plan while the current one executes: it starts from the
model's prediction of the latent at the step where the new plan will take effect (the current
observation rolled forward through the ``replan_every`` actions that execute meanwhile), so a
plan made during the motion is a plan for where the robot will be, not where it was. ``act``
never waits longer than ``max_wait_s`` for it; a late plan joins the queue at the step it
arrives, without its first actions (those were meant for steps already executed by the old
plan), and until then the old plan continues (or the ``fallback``). With ``reanchor_s``, a plan
made ahead is re-anchored when it takes effect: a few gradient steps from the observation then
at hand (or a short replan, warm-started with it) correct what the model's prediction of that
step got wrong.

One thread, not a process: planning is torch work that releases the GIL, the loop thread only
queues and sleeps, and a thread shares the model without copying it or pickling observations.
What a plan request holds and how it is planned live in :mod:`lewm_mpc.plan_requests`; the
thread and its hand-over in :mod:`lewm_mpc.planning_thread`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from lewm_mpc.plan_requests import PlanRecord, _Request, plan_request
from lewm_mpc.planners.base import REFINE_STEPS, Planner
from lewm_mpc.planners.refining import refiner_of
from lewm_mpc.planning_thread import PlanningThread
from lewm_mpc.surprise import BlockSurprise, SurpriseEvent, SurpriseMonitor, surprise_and_motion
from lewm_mpc.types import PlanResult

FALLBACKS = ("continue", "hold", "zero")
REANCHORS = ("gradient", "replan")


class MPCController:
    """Receding-horizon control from a queue of planned actions, optionally asynchronous.

    Args:
        planner: any planner (its model: any ``LatentWorldModel``).
        replan_every: env actions between two plans (default: the planner's
            ``receding_horizon`` blocks); a positive multiple of the model's ``action_block``,
            at most the planned horizon. The warm start shifts by as many blocks.
        asynchronous: plan in a background thread while the queue executes.
        max_wait_s: asynchronous: the longest ``act`` waits for a plan that is due (0: never;
            ``None``: until it is ready, which makes the controller act like the synchronous
            one with the plans made ahead). The first plan after ``reset`` is always awaited.
        fallback: asynchronous, while the next plan is due but not ready: ``"continue"``
            the old plan (default; past its end, the zero action), ``"hold"`` (repeat the last
            action) or ``"zero"`` (the action closest to zero within the bounds).
        deadline_s: per-plan wall-clock bound passed to the planner (None: its full budget).
            If the planner's iterations are not yet timed, the first plan is preceded by two
            full-budget ones (:meth:`~lewm_mpc.planners.base.Planner.warm_up`).
        reanchor_s: asynchronous: when a plan made ahead takes effect on time, correct it
            from the observation of that step for at most this many seconds and act on the
            result: the plan's first block then starts from where the robot is, not from
            where the model predicted it would be. ``act`` takes up to that much longer at
            those steps (the planning thread is idle then). None (default): act on the plan
            made ahead as it is.
        reanchor_by: how a plan is re-anchored: ``"gradient"`` (default; a differentiable
            model): at most ``reanchor_steps`` projected L-BFGS evaluations on the plan from
            the observed latent (:meth:`~lewm_mpc.planners.base.Planner.refine_latent`), a
            local correction of a plan whose start moved a little; ``"replan"``: the planner
            plans again, warm-started with the plan (no shift), within ``reanchor_s``.
        reanchor_steps: ``"gradient"``: the most L-BFGS evaluations of a re-anchoring.
        monitor: a :class:`~lewm_mpc.surprise.SurpriseMonitor`: after every executed block the
            surprise (predicted vs observed latent) is measured and kept in :attr:`surprises`
            (:class:`~lewm_mpc.surprise.BlockSurprise`); a score above the threshold records
            an event in :attr:`events` and its policy applies (default: replan at once).

    Use as a context manager (or call :meth:`close`) so the planning thread is joined.
    """

    def __init__(
        self,
        planner: Planner,
        replan_every: int | None = None,
        *,
        asynchronous: bool = False,
        max_wait_s: float | None = 0.0,
        fallback: str = "continue",
        deadline_s: float | None = None,
        reanchor_s: float | None = None,
        reanchor_by: str = "gradient",
        reanchor_steps: int = REFINE_STEPS,
        monitor: SurpriseMonitor | None = None,
    ) -> None:
        block = planner.model.action_block
        horizon_steps = planner.config.horizon * block
        replan_every = (
            planner.config.receding_horizon * block if replan_every is None else replan_every
        )
        if not (isinstance(replan_every, int) and 1 <= replan_every <= horizon_steps
                and replan_every % block == 0):  # fmt: skip
            raise ValueError(
                f"replan_every must be a multiple of the action block {block} in [1, "
                f"{horizon_steps}] (the planned horizon in env steps), got {replan_every!r}"
            )
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if max_wait_s is not None and not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0 seconds or None, got {max_wait_s}")
        for name, value in (("deadline_s", deadline_s), ("reanchor_s", reanchor_s)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, got {value}")
        if reanchor_s is not None and not asynchronous:
            raise ValueError("reanchor_s re-anchors plans made ahead: it needs "
                             "asynchronous=True (a synchronous plan starts from the "
                             "observation already)")  # fmt: skip
        if reanchor_by not in REANCHORS:
            raise ValueError(f"reanchor_by must be one of {REANCHORS}, got {reanchor_by!r}")
        if not (isinstance(reanchor_steps, int) and reanchor_steps >= 1):
            raise ValueError(f"reanchor_steps must be an int >= 1, got {reanchor_steps!r}")
        if (reanchor_s is not None and reanchor_by == "gradient"
                and not getattr(planner.model, "differentiable", True)):  # fmt: skip
            raise ValueError(f"reanchor_by='gradient' follows the model's gradient: "
                             f"{type(planner.model).__name__} is not differentiable; pass "
                             "reanchor_by='replan'")  # fmt: skip
        self.planner, self.replan_every = planner, replan_every
        self.asynchronous, self.max_wait_s = asynchronous, max_wait_s
        self.fallback, self.deadline_s, self.monitor = fallback, deadline_s, monitor
        self.reanchor_s, self.reanchor_by = reanchor_s, reanchor_by
        self.reanchor_steps = reanchor_steps
        low, high = (np.asarray(torch.as_tensor(b).cpu(), np.float32)
                     for b in (planner.model.action_low, planner.model.action_high))  # fmt: skip
        self._zero = np.clip(np.zeros_like(low), low, high)
        self.plans: list[PlanRecord] = []
        self.events: list[SurpriseEvent] = []
        self.surprises: list[BlockSurprise] = []  # every executed block's, with a monitor
        self.fallback_steps = 0
        self._watched: tuple[np.ndarray, int] | None = None  # observation at a block start
        self._executed: list[np.ndarray] = []  # the last block's actions
        history = int(getattr(planner.model, "history", 1))
        self._history = history  # frames the model conditions on (1: none kept)
        self._frames: list[tuple[np.ndarray, np.ndarray | None]] = []  # (obs, block after it)
        self._holding = False  # the monitor's "hold": zero actions until the next plan
        self._above = False  # the last block's surprise was above the threshold
        self._urgent = False  # a plan asked for by the monitor takes effect when ready
        self._goal: np.ndarray | torch.Tensor | None = None
        self._queue = np.zeros((0, low.shape[0]), np.float32)  # (N, A) the plan in effect
        self._index = 0  # next action of the queue
        self._step = 0
        self._last: np.ndarray | None = None
        self._planning = PlanningThread(self._plan, start=asynchronous)

    # ---------------------------------------------------------------- public API
    def reset(self, goal: Any = None) -> None:
        """Start an episode toward ``goal``: cold warm start, empty queue, no plan pending.

        Args:
            goal: an observation like ``obs`` (e.g. a goal image), a goal latent (a
                ``torch.Tensor`` of shape ``(latent_dim,)``), or None when the planner's task
                energy holds the goal itself (e.g. ``ProbedGoalDistance(probe, target=...)``
                for "agent at (x, y)"; the goal latent it receives is zeros).
        """
        self._planning.check_open()
        self._planning.cancel()  # the planner is not touched while the thread plans
        if goal is None:
            goal = torch.zeros(self.planner.model.latent_dim)
        if isinstance(goal, torch.Tensor):
            if goal.shape != (self.planner.model.latent_dim,):
                raise ValueError(
                    f"a latent goal must have shape ({self.planner.model.latent_dim},), got "
                    f"{tuple(goal.shape)}"
                )
            self._goal = goal.detach().float().clone()
        else:
            self._goal = np.asarray(goal).copy()
        self.planner.reset()
        self.plans, self.fallback_steps = [], 0
        self.events, self.surprises = [], []
        self._watched, self._holding, self._urgent, self._executed = None, False, False, []
        self._above = False
        self._frames = []
        self._queue = self._queue[:0]
        self._index = self._step = 0
        self._last = None

    def act(self, obs: Any) -> np.ndarray:
        """The next env action for the current observation ``obs``.

        Raises:
            RuntimeError: ``reset`` was not called, the controller is closed, or the planning
                thread failed (its exception is the cause).
        """
        self._planning.check_open()
        if self._goal is None:
            raise RuntimeError("call reset(goal) before act(obs)")
        obs = np.asarray(obs)
        self._remember(obs)
        surprised = self._watch(obs)
        if not self.asynchronous:
            if not self.plans or self._index >= self.replan_every or surprised:
                request = self._request_for(obs, lead=0)
                self._install(request, self._plan(request))
        else:
            if surprised:  # replan at once from this observation; the old plan runs meanwhile
                self._planning.submit(self._request_for(obs, lead=0))
                self._urgent = True
            self._act_async(obs)
        usable = len(self._queue)
        if self.asynchronous and self.fallback != "continue":
            usable = min(usable, self.replan_every)  # past the switch: the fallback, not the plan
        if self._holding:
            usable = 0
        if self._index < usable:
            action = self._queue[self._index]
            self._index += 1
        else:
            action = self._fallback_action()
            self.fallback_steps += 1
        self._step += 1
        self._last = action
        self._executed.append(action)
        del self._executed[: -self.planner.model.action_block]
        return action.copy()

    def close(self) -> None:
        """Stop and join the planning thread (idempotent)."""
        self._planning.close()

    def __enter__(self) -> MPCController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "asynchronous" if self.asynchronous else "synchronous"
        return f"MPCController({self.planner!r}, replan_every={self.replan_every}, {mode})"

    # ---------------------------------------------------------------- internals
    def _remember(self, obs: np.ndarray) -> None:
        """Keep the last ``history + 1`` block-boundary observations and the blocks between
        them: a plan conditions on the ``history`` latest, the surprise monitor's prediction of
        the block just executed on the ``history`` before the latest."""
        if self._history <= 1 or self._step % self.planner.model.action_block:
            return
        if self._frames:  # the block executed since the previous boundary
            previous, _ = self._frames[-1]
            self._frames[-1] = (previous, np.concatenate(self._executed))
        self._frames = [*self._frames[-self._history :], (obs.copy(), None)]

    def _watch(self, obs: np.ndarray) -> bool:
        """Measure the surprise of a block just executed; whether a replan is asked for."""
        if self.monitor is None:
            return False
        block = self.planner.model.action_block
        watched, self._watched = self._watched, (obs.copy(), self._step)
        if watched is None or self._step - watched[1] != block:
            if watched is not None and self._step - watched[1] < block:
                self._watched = watched  # mid-block: keep the block's first observation
            return False
        executed = np.stack(self._executed[-block:])  # (block, A)
        planner = self.planner
        before, _ = planner._as_batch(watched[0], "obs")
        after, _ = planner._as_batch(obs, "obs")
        actions = torch.as_tensor(executed.reshape(1, -1), device=before.device)
        measured = surprise_and_motion(planner.model, before, actions, after,
                                       self.monitor.readout, self._past_of_block())  # fmt: skip
        value, moved = (float(x[0]) for x in measured)
        score = self.monitor.score(value, moved)
        self.surprises.append(BlockSurprise(self._step, value, moved, score))
        threshold = self.monitor.value
        above, self._above = self._above, score > threshold
        if not self._above or (above and self.monitor.alarm == "onset"):
            return False
        event = SurpriseEvent(self._step, value, threshold, score)
        self.events.append(event)
        policy = self.monitor.on_surprise
        if callable(policy):
            policy(event)
            return False
        self._holding = policy == "hold"
        return True

    def _past_of_block(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The history before the block just executed, as :func:`surprise_and_motion` takes it
        ((1, C, *obs), (1, C, block*A)); None without history or before any past block."""
        if self._history <= 1 or len(self._frames) < 3 or self._frames[-2][1] is None:
            return None  # frames[-2] is the block's start, frames[-1] the observation after it
        past = [(frame, block) for frame, block in self._frames[-1 - self._history : -2]
                if block is not None]  # fmt: skip
        if not past:
            return None
        frames = torch.cat([self.planner._as_batch(frame, "obs")[0] for frame, _ in past])
        blocks = torch.as_tensor(np.stack([block for _, block in past]), device=frames.device)
        return frames[None], blocks[None]  # (1, C, *obs), (1, C, block*A)

    def _act_async(self, obs: np.ndarray) -> None:
        if not self.plans:  # the first plan of an episode: awaited
            self._planning.submit(self._request_for(obs, lead=0))
            self._planning.wait(None)
        elif self._index < self.replan_every and not self._urgent:
            return  # the next plan is not due yet
        else:
            self._planning.wait(self.max_wait_s)
        ready = self._planning.take()
        if ready is None:
            return
        request, result = ready
        if self._reanchoring(request):
            result = self._reanchor(obs, result)
        self._install(request, result)
        # Plan the next one now, for the step it takes effect: after ``replan_every`` more.
        self._planning.submit(self._request_for(obs, lead=self.replan_every))

    def _request_for(self, obs: np.ndarray, lead: int) -> _Request:
        """A plan request from ``obs`` after up to ``lead`` queued actions (whole blocks)."""
        block = self.planner.model.action_block
        actions = self._queue[self._index : self._index + lead]
        actions = actions[: len(actions) - len(actions) % block]  # (L, A), L whole blocks
        shift = None
        if self.plans:  # blocks from the plan in effect's first action to the new plan's start
            previous = self.plans[-1]
            start_of_previous = previous.step - previous.late
            shift = (self._step + len(actions) - start_of_previous) // block
        assert self._goal is not None
        past = [(frame, block) for frame, block in self._frames[-self._history : -1]
                if block is not None]  # fmt: skip
        if self._step % block or not self._frames or self._frames[-1][1] is not None:
            past = []  # not at a block boundary (a late plan): no aligned history
        return _Request(obs.copy(), self._goal, actions.copy(), self._step, shift,
                        tuple(f for f, _ in past), tuple(b for _, b in past))  # fmt: skip

    def _install(self, request: _Request, result: PlanResult) -> None:
        due = request.step + len(request.lead)  # the step the plan was made for
        late = max(self._step - due, 0)
        self._queue = np.asarray(result.actions, np.float32)[late:]
        self._index = 0
        self._holding = self._urgent = False
        self.plans.append(PlanRecord(self._step, request.step, late, result))

    def _plan(self, request: _Request) -> PlanResult:
        """Plan from the request's observation rolled forward through its lead actions."""
        refining = self.reanchor_s is not None and self.reanchor_by == "gradient"
        untimed = self.deadline_s is not None and not self.planner.timed
        refiner = refiner_of(self.planner, self.reanchor_steps) if refining else None
        if untimed or (refiner is not None and refiner.step_clock.estimate is None):
            for _ in range(2):  # time the iterations first (Planner.warm_up), so d holds
                made = plan_request(self.planner, request, self._history, None)
                if refining:  # and the re-anchoring's gradient evaluations
                    plan_request(self.planner, request, self._history, None, made.actions,
                                 self.reanchor_steps)  # fmt: skip
            self.planner.reset()
        return plan_request(self.planner, request, self._history, self.deadline_s)

    def _reanchoring(self, request: _Request) -> bool:
        """Whether to re-anchor the plan of ``request`` now: on, made ahead from a predicted
        latent, taking effect on time, and the planning thread idle (no urgent plan pending)."""
        if self.reanchor_s is None or not len(request.lead):
            return False
        return self._planning.idle() and request.step + len(request.lead) == self._step

    def _reanchor(self, obs: np.ndarray, made: PlanResult) -> PlanResult:
        """The plan ``made`` ahead for this step, corrected from ``obs`` within
        ``reanchor_s``: refined by the gradient, or planned again warm-started with it (no
        shift: it starts here)."""
        request = dataclasses.replace(self._request_for(obs, lead=0), shift=0)
        refine = made.actions if self.reanchor_by == "gradient" else None
        return plan_request(self.planner, request, self._history, self.reanchor_s, refine,
                            self.reanchor_steps)  # fmt: skip

    def _fallback_action(self) -> np.ndarray:
        if self.fallback == "hold" and self._last is not None:
            return self._last
        return self._zero
