"""``benchmarks/ablation.py``: the variant registry, and its smoke mode end to end in a temporary
folder (results lines, summary files, and a rerun that skips every finished stage).

The numbers mean nothing at these sizes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("ablation")


def test_registry_changes_one_lever_at_a_time(script) -> None:
    """Every variant changes one lever, except combinations, named ``a+b``, which change
    exactly the levers their parts change."""
    assert len(script.VARIANTS["pusht"]) >= 10 and len(script.VARIANTS["cube"]) >= 6
    for env, variants in script.VARIANTS.items():
        reference = script.REFERENCE[env]
        names = [variant.name for variant in variants]
        assert len(set(names)) == len(names)
        assert variants[0] == reference  # today's recipe
        for variant in variants[1:]:
            assert script.lever(variant, reference) not in ("", "reference")
            changed = script.lever(variant, reference).count(";") + 1
            assert changed == variant.name.count("+") + 1, variant.name
    pusht = {variant.name: variant for variant in script.VARIANTS["pusht"]}
    assert {"scripted", "goal"} == {variant.policy for variant in pusht.values()}
    assert pusht["mppi"].model_key() == pusht["baseline"].model_key()  # planner-only: shared
    assert pusht["sigreg-0.3"].model_key() != pusht["baseline"].model_key()  # a training lever
    combined = pusht["state-aux-0.1+probed-goal"]  # the state-aux model, planned otherwise
    assert combined.model_key() == pusht["state-aux-0.1"].model_key()
    recorded = script._plain(dataclasses.asdict(pusht["baseline"]))
    del recorded["train_overrides"]  # a row written before that field existed still counts
    assert script._same_settings(recorded, script._plain(dataclasses.asdict(pusht["baseline"])))
    assert not script._same_settings(
        recorded, script._plain(dataclasses.asdict(pusht["sigreg-0.3"]))
    )
    assert pusht["image-96"].data_key() == "scripted-300ep-200st-b1-96px"


def test_results_ignore_rows_of_edited_variants(script, tmp_path) -> None:
    results = script.Results(tmp_path / "results.jsonl")
    variant = script.smoke_variants("pusht")[0]
    results.add(variant, "data", variant.data_key(), {"frames": 3})
    assert script.Results(tmp_path / "results.jsonl").get(variant, "data")["frames"] == 3
    assert results.get(replace(variant, episodes=9), "data") is None


def test_smoke_writes_results_and_a_rerun_skips_finished_stages(script, tmp_path, capsys) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--env", "pusht", "--smoke", "--work", str(work), "--out", str(out)]
    summary = script.main(argv)
    lines = (work / "pusht" / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    names = [variant.name for variant in script.smoke_variants("pusht")]
    assert [(row["variant"], row["stage"]) for row in rows] == [
        (name, stage) for name in names for stage in script.STAGES
    ]
    for row in rows:
        if row["stage"] in ("select", "common"):
            assert row["pairs"] == 2 and 0 <= row["ci95"][0] <= row["ci95"][1] <= 1
            assert row["data_policy"] == "scripted"
    common = [row for row in rows if row["stage"] == "common"]
    assert common[0]["same_as_select"] and not common[1]["same_as_select"]
    assert all(row["overlap"] == 0 for row in common)
    table = (out / "ablation_pusht_smoke.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert json.loads((out / "ablation_pusht_smoke.json").read_text()) == summary
    capsys.readouterr()

    script.main(argv)
    assert (work / "pusht" / "results.jsonl").read_text().splitlines() == lines
    assert capsys.readouterr().out.count("already finished") == len(rows)
    script.main([*argv, "--list"])
    listing = capsys.readouterr().out
    assert listing.count(",".join(script.STAGES)) == len(names)


def test_a_grown_dataset_keeps_the_smaller_ones_episodes(script, tmp_path) -> None:
    import argparse

    from lewm_mpc.data import EpisodeDataset

    args = argparse.Namespace(pairs=2, select_seed=1, seed=0, workers=1)
    queue = script.Queue("pusht", tmp_path, args, smoke=True)
    small = replace(script.smoke_variants("pusht")[0], episodes=2)
    grown = replace(small, episodes=3, grows=2)
    assert script.data_seed(queue.spec, grown) == script.data_seed(queue.spec, small)
    assert grown.data_key() != small.data_key() and "-from2-" in grown.data_key()
    first = EpisodeDataset.load(queue.collect(small))
    second = EpisodeDataset.load(queue.collect(grown))
    assert (first.num_episodes, second.num_episodes) == (2, 3)
    rows = first.num_rows
    assert np.array_equal(second.pixels[:rows], first.pixels[:])
    assert np.array_equal(second.action[:rows], first.action[:], equal_nan=True)  # NaN: no action
    # A larger one grows from the largest that exists, copied: the sources stay as they were.
    largest = replace(small, episodes=4, grows=2)
    assert queue._largest_seed_dataset(largest) == queue.data_path(grown)
    assert EpisodeDataset.load(queue.collect(largest)).num_episodes == 4
    assert EpisodeDataset.load(queue.data_path(grown)).num_episodes == 3
    with pytest.raises(ValueError, match=r"grows=5 must be in 1 \.\. episodes - 1"):
        queue.collect(replace(small, episodes=4, grows=5, name="bad"))
