"""Datasets of env rollouts: HDF5 format, collection, and training windows."""

from lewm_mpc.data.collect import Policy, collect, collect_episode, episode_seed
from lewm_mpc.data.dataset import EpisodeDataset
from lewm_mpc.data.format import (
    ACTION_KEY,
    EPISODE_IDX_KEY,
    FORMAT_VERSION,
    PIXELS_KEY,
    STATE_KEY,
    STEP_IDX_KEY,
    DatasetInfo,
    DatasetMeta,
    Episode,
    ObservationSpec,
    inspect_dataset,
)
from lewm_mpc.data.interop import export_swm, import_lerobot, import_npz, import_swm
from lewm_mpc.data.windows import WindowBatch, WindowSampler, action_stats
from lewm_mpc.data.writer import merge, write_episodes

__all__ = [
    "ACTION_KEY",
    "EPISODE_IDX_KEY",
    "FORMAT_VERSION",
    "PIXELS_KEY",
    "STATE_KEY",
    "STEP_IDX_KEY",
    "DatasetInfo",
    "DatasetMeta",
    "Episode",
    "EpisodeDataset",
    "ObservationSpec",
    "Policy",
    "WindowBatch",
    "WindowSampler",
    "action_stats",
    "collect",
    "collect_episode",
    "episode_seed",
    "export_swm",
    "import_lerobot",
    "import_npz",
    "import_swm",
    "inspect_dataset",
    "merge",
    "write_episodes",
]
