"""TOML planner presets: every committed preset loads and builds; bad files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.planners.presets import build_planner, load_preset

PRESETS = sorted((Path(__file__).parents[1] / "planners").glob("*.toml"))


def test_presets_exist():
    assert PRESETS, "planners/ should hold at least one TOML preset"


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_committed_presets_build_planners(path):
    preset = load_preset(path)
    planner = build_planner(WorldModel(tiny_config()).eval(), path, seed=7)
    assert isinstance(planner, preset.planner)
    assert planner.config.seed == 7
    assert planner.objective.task == preset.energy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('planner = "annealing"\n', "planner must be one of"),
        ('planner = "cem"\n[config]\nsamples = 3\n', "no fields"),
        ('planner = "cem"\n[config]\ntopk = 500\n', "topk"),
        ('planner = "cem"\nextra = 1\n', "unknown top-level"),
        ("planner = \n", "not valid TOML"),
    ],
)
def test_bad_presets_are_refused(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_preset(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_preset(tmp_path / "missing.toml")
