"""World models: encoders, predictors, the JEPA model, SIGReg, checkpoints, and the simulator
model (``SimulatorModel``, the true simulator as a world model; import it from
``lewm_mpc.models.simulator`` or ``lewm_mpc``)."""

from lewm_mpc.models.checkpoint import CheckpointError
from lewm_mpc.models.config import WorldModelConfig, named_config
from lewm_mpc.models.fused_cache import input_gradients_only
from lewm_mpc.models.jepa import LossTerms, WorldModel
from lewm_mpc.models.sigreg import SIGRegConfig, sigreg

__all__ = [
    "CheckpointError",
    "LossTerms",
    "SIGRegConfig",
    "WorldModel",
    "WorldModelConfig",
    "input_gradients_only",
    "named_config",
    "sigreg",
]
