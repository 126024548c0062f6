"""The deadline clock: the first (cold) iteration and later stalls do not starve a planner."""

from __future__ import annotations

import time

from lewm_mpc.planners.clock import IterationClock


def record(clock: IterationClock, seconds: float) -> None:
    clock.start()
    clock._started -= seconds  # as if the iteration had taken `seconds`
    clock.stop()


def test_the_first_iteration_is_not_recorded():
    clock = IterationClock()
    record(clock, 0.5)  # cold: kernel selection, allocations
    assert clock.estimate is None
    record(clock, 0.01)
    assert abs(clock.estimate - 1.1 * 0.01) < 1e-4  # real clock time between start and stop


def test_a_stall_is_forgotten_once_it_alone_blocks_an_iteration():
    clock = IterationClock()
    for seconds in (0.01, 0.01, 0.011, 0.012, 0.3):  # the first is cold; 0.3 s is a stall
        record(clock, seconds)
    deadline = time.perf_counter() + 0.1
    assert not clock.fits(deadline)  # the stall's estimate (0.36 s) does not fit
    assert clock.fits(deadline)  # forgotten: the planner iterates again
    assert abs(clock.estimate - 1.1 * 0.012) < 1e-4


def test_iterations_that_really_do_not_fit_keep_being_refused():
    clock = IterationClock()
    for seconds in (0.5, 0.2, 0.21, 0.19):
        record(clock, seconds)
    deadline = time.perf_counter() + 0.1
    assert not any(clock.fits(deadline) for _ in range(20))
    assert clock.estimate > 0.1


def test_an_occasional_slow_iteration_is_budgeted_for_not_forgotten():
    clock = IterationClock()
    for seconds in (0.5, *[0.01] * 30, 0.02, *[0.01] * 30):  # one iteration in 60 takes 2x
        record(clock, seconds)
    assert abs(clock.estimate - 1.1 * 0.02) < 1e-4  # the tail sets the budget
    deadline = time.perf_counter() + 0.015
    assert not any(clock.fits(deadline) for _ in range(5))  # a 2x tail is no stall
