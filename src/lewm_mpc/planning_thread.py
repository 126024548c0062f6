"""The background thread of an asynchronous :class:`~lewm_mpc.MPCController`.

It plans the latest request it is given, one at a time: a new request replaces one not yet
started and discards a result not yet taken. A result is taken at most once; an exception in
the thread ends it and is raised at the next :meth:`PlanningThread.take` (or
:meth:`PlanningThread.check_open`), chained to its cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lewm_mpc.plan_requests import _Request
from lewm_mpc.types import PlanResult


class PlanningThread:
    """Requests in, plans out, under one condition variable.

    Args:
        plan: what the thread runs for a request (the controller's planning call).
        start: start the thread (False: a synchronous controller, which only uses the
            closed state).
    """

    def __init__(self, plan: Callable[[_Request], PlanResult], start: bool = True) -> None:
        self._plan = plan
        self._lock = threading.Condition()
        self._request: _Request | None = None  # the next request to plan
        self._ready: tuple[_Request, PlanResult] | None = None
        self._error: BaseException | None = None
        self._busy = False  # a request is being planned
        self.closed = False
        self.thread: threading.Thread | None = None
        if start:
            self.thread = threading.Thread(target=self._work, name="lewm-mpc-planner",
                                           daemon=True)  # fmt: skip
            self.thread.start()

    def submit(self, request: _Request) -> None:
        """Plan ``request`` next (replacing one not yet started; a result not taken is
        dropped)."""
        with self._lock:
            self._request, self._ready = request, None
            self._lock.notify_all()

    def wait(self, timeout: float | None) -> None:
        """Wait until a plan is ready, the thread failed, nothing is pending, or ``timeout``
        seconds passed (None: no limit)."""
        end = None if timeout is None else time.perf_counter() + timeout
        with self._lock:
            while self._ready is None and self._error is None and not self.closed:
                if self._request is None:
                    return  # nothing pending
                left = None if end is None else end - time.perf_counter()
                if left is not None and left <= 0:
                    return
                self._lock.wait(left)

    def take(self) -> tuple[_Request, PlanResult] | None:
        """The ready (request, plan), once, or None.

        Raises:
            RuntimeError: the thread failed (its exception is the cause).
        """
        with self._lock:
            self._raise_error()
            ready, self._ready = self._ready, None
        return ready

    def idle(self) -> bool:
        """Whether nothing is pending or being planned."""
        with self._lock:
            return self._request is None and not self._busy

    def cancel(self) -> None:
        """Drop the pending request and the ready plan, and wait for a plan in progress to
        end (so the planner can be touched)."""
        with self._lock:
            self._request = self._ready = None
            while self._busy:
                self._lock.wait()

    def check_open(self) -> None:
        """Raise if closed or if the thread failed."""
        if self.closed:
            raise RuntimeError("the controller is closed")
        with self._lock:
            self._raise_error()

    def close(self) -> None:
        """Stop and join the thread (idempotent)."""
        with self._lock:
            self.closed = True
            self._lock.notify_all()
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self.closed:
                    self._lock.wait()
                if self.closed:
                    return
                request, self._busy = self._request, True
            try:
                result = self._plan(request)
            except BaseException as error:  # surfaced at the next take / check_open
                with self._lock:
                    self._error, self._request, self._busy = error, None, False
                    self._lock.notify_all()
                return
            with self._lock:
                if self._request is request:  # not superseded by a reset
                    self._ready, self._request = (request, result), None
                self._busy = False
                self._lock.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(
                f"the planning thread failed: {type(self._error).__name__}: {self._error}"
            ) from self._error
