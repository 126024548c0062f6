"""TOML planner presets: every shipped preset loads and builds; bad files are refused."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.planners import get_planner_entry
from lewm_mpc.planners.presets import build_planner, load_preset, preset_names

PRESETS = preset_names()


def test_presets_exist():
    assert PRESETS, "lewm_mpc/planners/presets/ should hold at least one TOML preset"


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_presets_build_planners(name):
    preset = load_preset(name)
    planner = build_planner(WorldModel(tiny_config()).eval(), name, seed=7)
    assert isinstance(planner.config, get_planner_entry(preset.planner).config_class)
    assert planner.config == dataclasses.replace(preset.config, seed=7)
    assert planner.config.seed == 7
    assert planner.objective.task == preset.energy
    assert preset.description


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('planner = "annealing"\n', "unknown planner 'annealing'"),
        ('planner = "cem"\n[config]\nsamples = 3\n', "no fields"),
        ('planner = "cem"\n[config]\ntopk = 500\n', "topk"),
        ('planner = "cem"\nextra = 1\n', "unknown top-level"),
        ('planner = "cem"\nconfig = 3\n', "must be a table"),
        ('planner = "cem"\n[energy]\nweight = 1.0\n', "p.toml"),
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


def test_unknown_preset_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="tworoom_cem_10hz"):
        load_preset("no_such_preset")
