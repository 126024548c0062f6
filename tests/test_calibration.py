"""Calibrated guardrail margins: exact models give zero, a known probe bias is recovered."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.energies import calibrate_probe_margin
from lewm_mpc.envs import get_env_spec
from lewm_mpc.models.simulator import SimulatorModel


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return EpisodeDataset.load(tiny_dataset)


def _oracle(dataset, action_block):
    return SimulatorModel(get_env_spec("tworoom"), dataset.meta.env_config, action_block)


def test_an_exact_model_and_probe_need_no_margin(dataset) -> None:
    with _oracle(dataset, action_block=1) as oracle:
        bound = calibrate_probe_margin(oracle, lambda z: z, dataset, dataset.episode_ids, steps=3)
    assert bound.margin < 1e-5  # float32-rounded starts only
    assert len(bound.per_step) == 3 and bound.steps == 3
    assert bound.windows == sum(len - 4 for len in dataset.episode_lengths)


def test_a_probe_bias_is_the_margin(dataset) -> None:
    bias = torch.tensor([0.03, -0.04], dtype=torch.float64)
    with _oracle(dataset, action_block=1) as oracle:
        bound = calibrate_probe_margin(
            oracle, lambda z: z + bias, dataset, dataset.episode_ids, [0, 1], quantile=0.9
        )
    assert bound.margin == pytest.approx(0.05, abs=1e-5)
    np.testing.assert_allclose(bound.per_step, [0.05], atol=1e-5)


def test_interpolation_between_blocks_is_measured(dataset) -> None:
    # With blocks of 5 env steps the guardrail interpolates between predicted points; a turning
    # agent leaves the chord, so even the exact simulator needs a (small) margin, largest
    # mid-block.
    with _oracle(dataset, action_block=5) as oracle:
        bound = calibrate_probe_margin(oracle, lambda z: z, dataset, dataset.episode_ids)
    assert len(bound.per_step) == 5
    assert 0 < bound.margin < 0.1
    assert bound.per_step[-1] < 1e-5 and max(bound.per_step[1:4]) > 0


def test_data_collected_in_blocks_is_measured_at_its_rows(tmp_path) -> None:
    # Rows every 5 env steps: the chord is checked where the data has states (block ends).
    path = collect_dataset("tworoom", tmp_path / "b5.h5", 4, 40, seed=0, progress=False,
                           action_block=5)  # fmt: skip
    blocks = EpisodeDataset.load(path)
    with _oracle(blocks, action_block=5) as oracle:
        bound = calibrate_probe_margin(oracle, lambda z: z, blocks, blocks.episode_ids)
    assert len(bound.per_step) == 1 and bound.margin < 1e-5
    with _oracle(blocks, action_block=10) as oracle:  # two rows per model step
        bound = calibrate_probe_margin(oracle, lambda z: z, blocks, blocks.episode_ids)
    assert len(bound.per_step) == 2 and bound.per_step[-1] < 1e-5 < bound.per_step[0]
    with _oracle(blocks, action_block=3) as oracle, pytest.raises(ValueError, match="multiple"):
        calibrate_probe_margin(oracle, lambda z: z, blocks, blocks.episode_ids)


def test_bad_arguments_raise(dataset) -> None:
    with _oracle(dataset, action_block=1) as oracle:
        ids = dataset.episode_ids
        with pytest.raises(ValueError, match="quantile"):
            calibrate_probe_margin(oracle, lambda z: z, dataset, ids, quantile=1.0)
        with pytest.raises(ValueError, match="steps"):
            calibrate_probe_margin(oracle, lambda z: z, dataset, ids, steps=0)
        with pytest.raises(ValueError, match="target"):
            calibrate_probe_margin(oracle, lambda z: z, dataset, ids, target=[0])
