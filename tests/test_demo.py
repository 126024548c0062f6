"""``lewm-mpc demo``, the README's main command, end to end at a tiny scale."""

from __future__ import annotations

import json

from lewm_mpc.cli import main
from lewm_mpc.models.run_dir import checkpoint_dir


def test_demo_collects_trains_evaluates_and_writes_its_outputs(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--episodes", "6", "--steps", "5", "--batch-size", "8",
            "--pairs", "2", "--samples", "16", "--iterations", "2", "--topk", "4"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[3/3] Two-Room success rate" in printed
    assert {"tworoom.h5", "model", "eval.json", "episode.mp4"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "eval.json").read_text())
    assert len(report["pairs"]) == 2
    checkpoint = checkpoint_dir(out / "model").relative_to(out)
    stamps = {name: (out / name).stat().st_mtime_ns for name in ("tworoom.h5", checkpoint)}
    assert main(argv) == 0  # a rerun resumes: nothing is collected or trained again
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in stamps}
