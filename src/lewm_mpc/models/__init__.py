"""World models: encoders, predictors, the JEPA model, SIGReg and checkpoints."""

from lewm_mpc.models.checkpoint import CheckpointError
from lewm_mpc.models.config import WorldModelConfig, named_config
from lewm_mpc.models.jepa import LossTerms, WorldModel
from lewm_mpc.models.sigreg import SIGRegConfig, sigreg

__all__ = [
    "CheckpointError",
    "LossTerms",
    "SIGRegConfig",
    "WorldModel",
    "WorldModelConfig",
    "named_config",
    "sigreg",
]
