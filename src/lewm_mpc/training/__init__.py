"""Training loop: prediction loss + lambda * SIGReg, with validation, checkpoints and resume.

A run directory holds its newest checkpoints (``checkpoints/step-<N>/``, each the world model,
``config.json`` + ``model.safetensors``, and the resume state, ``train_state.json`` +
``train_state.safetensors``: optimizer, step, RNG states) and a ``metrics.jsonl`` log.
``WorldModel.load(run_dir)`` loads the newest checkpoint. A checkpoint is committed as one unit
(:mod:`lewm_mpc.models.run_dir`), so a kill at any instant leaves a run that loads and resumes,
and Ctrl-C saves the completed steps before exiting (at a step boundary): an interrupted run
resumes exactly where it stopped (bit-identical on CPU). A second Ctrl-C aborts at once,
keeping the last checkpoint. Rerunning a finished run with more ``steps`` trains it further
(the learning-rate schedule stretched to the new length).

Under ``torchrun`` (:mod:`lewm_mpc.distributed`) the same loop runs data-parallel: each process
draws ``batch_size / N`` windows from its shard of the training episodes, gradients are averaged
by ``DistributedDataParallel``, SIGReg and the projectors' BatchNorm see the global batch, so the
objective is the one a single process computes on the concatenated batch. Rank 0 validates,
logs and commits checkpoints; a run resumes on any number of processes (bit-identically on the
same number).
"""

from lewm_mpc.training.batchnorm import calibrate_batchnorm
from lewm_mpc.training.config import TrainConfig, TrainSummary, model_config_for
from lewm_mpc.training.identity import RESUMABLE_CHANGES, identity_differences
from lewm_mpc.training.persistence import METRICS, STATE_JSON, STATE_TENSORS
from lewm_mpc.training.run import train
from lewm_mpc.training.trainer import Trainer

__all__ = [
    "METRICS",
    "RESUMABLE_CHANGES",
    "STATE_JSON",
    "STATE_TENSORS",
    "TrainConfig",
    "TrainSummary",
    "Trainer",
    "calibrate_batchnorm",
    "identity_differences",
    "model_config_for",
    "train",
]
