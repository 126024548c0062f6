"""Finished jobs, one JSON line each, appended as they finish: the sweep's resume state.

Each line is written with one ``write`` call, flushed and fsynced, with Ctrl-C held off until
it is on disk, so an interruption loses at most the jobs still running. A crash can still cut
the last line short: reading ignores a truncated last line, and the next append removes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lewm_mpc.atomic import defer_interrupts
from lewm_mpc.bench.worker import JobResult


class ResultStore:
    """``jobs.jsonl`` of a results folder.

    Args:
        path: the JSON-lines file (created on first append, with its folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, JobResult]:
        """Finished jobs by :meth:`Job.key` (the first record of a job wins).

        Raises:
            ValueError: a line other than the last one is not a valid record.
        """
        if not self.path.exists():
            return {}
        lines = self.path.read_bytes().split(b"\n")
        results: dict[str, JobResult] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                result = JobResult.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as error:
                if number == len(lines):  # cut short by a crash mid-write: not finished
                    continue
                raise ValueError(
                    f"{self.path} line {number} is not a job record ({error}); delete that "
                    "line to rerun its job"
                ) from None
            results.setdefault(result.job.key(), result)
        return results

    def append(self, result: JobResult) -> None:
        """Add one finished job durably."""
        line = (json.dumps(result.to_dict(), sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with defer_interrupts():
            self._drop_partial_tail()
            with open(self.path, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def _drop_partial_tail(self) -> None:
        """Remove a last line cut short by a crash (it holds no finished job)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            cut = data.rfind(b"\n") + 1  # 0 when the file is one partial line
            try:
                JobResult.from_dict(json.loads(data[cut:]))
            except (ValueError, KeyError, TypeError):
                handle.truncate(cut)
            else:  # a complete record missing only its newline
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
