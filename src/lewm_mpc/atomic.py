"""Crash- and Ctrl-C-safe file writing: temp file in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def default_permissions(path: str | Path) -> None:
    """Give a file or folder the permissions a plain ``open``/``mkdir`` would (the umask's),
    undoing the private 0600/0700 of temporary files and folders and of writers that create
    files that way."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_UMASK)


@contextlib.contextmanager
def defer_interrupts() -> Iterator[None]:
    """Hold SIGINT until the block ends, so a Ctrl-C cannot split a multi-file commit.

    Outside the main thread (where signal handlers cannot be installed) this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, object]] = []
    previous = signal.signal(signal.SIGINT, lambda sig, frame: received.append((sig, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])


class InterruptRequest:
    """Set by :func:`graceful_interrupts` when Ctrl-C arrives; checked at safe points."""

    requested: bool = False


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[InterruptRequest]:
    """Turn the first Ctrl-C into a flag so a loop can stop at a consistent point.

    The loop checks ``request.requested`` between units of work, saves, and raises
    ``KeyboardInterrupt`` itself; a second Ctrl-C raises immediately. Outside the main thread
    the flag is never set.
    """
    request = InterruptRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(sig: int, frame: object) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
