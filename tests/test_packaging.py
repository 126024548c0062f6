"""Packaging: ``python -m lewm_mpc``, ``--version``, the license, the extras and the constraints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import lewm_mpc
from lewm_mpc.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_python_dash_m_runs_the_cli_and_prints_the_version(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lewm_mpc", "--version"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "MUJOCO_GL": "egl"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"lewm-mpc {version('lewm-mpc')}"
    assert version("lewm-mpc") == lewm_mpc.__version__ == PROJECT["version"]


def test_version_flag_exits_zero(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lewm-mpc {lewm_mpc.__version__}"


def test_license_file_matches_the_declared_license() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "lewm_mpc contributors" in text


def test_all_extra_is_the_union_of_the_feature_extras() -> None:
    extras = PROJECT["optional-dependencies"]
    (everything,) = extras["all"]
    named = set(Requirement(everything).extras)
    assert named | {"dev", "all", "reacher", "pusht", "cube", "pointmass"} == set(extras)
    assert set(Requirement(extras["envs"][0]).extras) == {"reacher", "pusht", "cube", "pointmass"}


def test_extras_are_ranges_and_the_constraints_pin_a_version_inside_each() -> None:
    pins = _constraints()
    for extra, requirements in PROJECT["optional-dependencies"].items():
        for text in requirements:
            requirement = Requirement(text)
            if requirement.name == "lewm-mpc":
                continue  # a union of other extras
            assert "==" not in text, f"[{extra}] {text}: use a range; pin in constraints.txt"
            name = re.sub(r"[-_.]+", "-", requirement.name).lower()
            assert name in pins, f"constraints.txt does not pin {name}"
            assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {text}"
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name != "torch":  # the Makefile installs the CPU wheel (TORCH)
            assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {text}"


def test_makefile_installs_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-e .*-c constraints\.txt", makefile)
    assert "TORCH ?= torch==2.13.0" in makefile
