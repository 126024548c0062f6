"""Every example (``examples/NN_name.py``) documents how to run it and runs end to end with
``--smoke`` in seconds, from a scratch working directory, without writing into the repo."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lewm_mpc.recipes import SMOKE_NOTICE

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("[0-9]*.py"))
ENV = {**os.environ, "MUJOCO_GL": "egl"}

# What a successful smoke run prints, per example (others: any non-empty output).
EXPECTED_STDOUT = {
    "01_plan_in_a_loop.py": r"episode 0: success=(True|False) after \d+ steps",
    "02_compare_planners.py": r"CEM: success=(True|False) after \d+ steps.*\n"
    r"MPPI: success=.*\nGradient: success=",
    "03_guardrails.py": r"no guardrail *: success \d+/2, entered the box in \d+/2 episodes.*\n"
    r".*with keep-out *: success \d+/2, entered the box in \d+/2",
    # The analytic model plans the smoke episodes to the goal with every planner.
    "04_bring_your_own_model.py": r"CEM: success [12]/2.*\nMPPI: success [12]/2.*\n"
    r"Gradient: success [12]/2",
    "05_train_your_own.py": r"success \d+/3 = [\d.]+% \(95% CI [\d.]+-[\d.]+\)",
}


def _run(script: Path, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_examples_are_found() -> None:
    names = {script.name for script in EXAMPLES}
    assert set(EXPECTED_STDOUT) <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_in_smoke_mode(script: Path, tmp_path: Path) -> None:
    repo_before = sorted(REPO.iterdir())
    done = _run(script, "--smoke", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    pattern = EXPECTED_STDOUT.get(script.name, r"\w")
    assert re.search(pattern, done.stdout), f"stdout lacks {pattern!r}:\n{done.stdout}"
    assert done.stdout.splitlines()[0] == SMOKE_NOTICE  # tiny budgets: say so first
    assert sorted(REPO.iterdir()) == repo_before  # outputs go to a temp dir or --out


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_documents_its_commands(script: Path, tmp_path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    assert docstring, f"{script.name} has no module docstring"
    assert f"python examples/{script.name}" in docstring  # how to run it
    assert "--smoke" in docstring
    done = _run(script, "--help", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--smoke" in done.stdout


def test_compare_planners_runs_on_the_shipped_model_without_a_dataset(tmp_path: Path) -> None:
    """No --model, no --smoke: the shipped Two-Room model with regenerated episodes."""
    out = tmp_path / "compare.mp4"
    script = REPO / "examples" / "02_compare_planners.py"
    done = _run(script, "--steps", "5", "--out", str(out), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(EXPECTED_STDOUT[script.name], done.stdout), done.stdout
    assert out.is_file()


def test_a_missing_model_names_the_flag_to_pass(tmp_path: Path) -> None:
    done = _run(REPO / "examples" / "03_guardrails.py", "--model", "nope", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "pass --model DIR" in done.stderr
