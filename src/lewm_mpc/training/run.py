"""The entry point: train (or resume) a world model from a dataset file."""

from __future__ import annotations

from pathlib import Path

from lewm_mpc import distributed
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models.checkpoint import file_sha256
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.models.run_meta import DatasetRef
from lewm_mpc.training.config import TrainConfig, TrainSummary, model_config_for
from lewm_mpc.training.trainer import Trainer
from lewm_mpc.types import ObsMode


def train(
    dataset_path: str | Path,
    run_dir: str | Path,
    model_config: WorldModelConfig | None = None,
    config: TrainConfig | None = None,
    obs_mode: ObsMode = "pixels",
    progress: bool = True,
    tensorboard: str | Path | None = None,
) -> TrainSummary:
    """Train (or resume) a world model on a collected dataset.

    Any dataset that records its action bounds works: collected ones, or a robot's own data
    written with ``lewm_mpc.data.write_episodes`` (no environment is needed). Started by
    ``torchrun`` (several processes), it joins their group and trains data-parallel.

    Args:
        dataset_path: HDF5 dataset (``lewm_mpc.data`` format).
        run_dir: output folder (checkpoint, resume state, metrics).
        model_config: architecture; data-dependent fields are filled from the dataset.
        config: optimization settings.
        obs_mode: "pixels" or "state" observations.
        progress: show a tqdm bar.
        tensorboard: also log the training curves as TensorBoard events in this folder
            (needs the ``tb`` extra).
    """
    config = config or TrainConfig()
    dataset = EpisodeDataset.load(dataset_path)
    base = model_config or WorldModelConfig()
    full = model_config_for(dataset, base, obs_mode)
    reference = DatasetRef(str(dataset_path), file_sha256(Path(dataset_path)))
    joined = distributed.init_from_environment(config.device)  # under torchrun
    try:
        trainer = Trainer(run_dir, dataset, full, config, obs_mode, reference, tensorboard)
        return trainer.fit(progress)
    finally:
        if joined:
            distributed.shutdown()
