"""Reference LeRobot datasets written and read back by lerobot itself (the import test fixture).

Builds two small LeRobot v3.0 datasets with lerobot's own writer (``LeRobotDataset.create``,
``add_frame``, ``save_episode``, ``finalize``; lerobot 0.4.2) -- 3 episodes of 7, 9 and 12 frames,
fps 10, a 32x32 RGB camera ``observation.image`` with a deterministic pattern, 2-d float32
``action``, 4-d float32 ``observation.state`` -- and writes into ``--out``:

* ``video/`` -- the camera stored as video (``dtype: video``): lerobot's default encoder
  (``libsvtav1``, ``yuv420p``, ``g=2``, ``crf=30``; PyAV 15.1 ships it), all episodes
  concatenated in ``videos/observation.image/chunk-000/file-000.mp4``;
* ``image/`` -- the camera stored as PNG images in the parquet (``use_videos=False``,
  ``dtype: image``);
* ``video_reference.npz`` / ``image_reference.npz`` -- what lerobot's own reader returns,
  ``LeRobotDataset(repo_id, root)[i]`` for every frame ``i``: ``frames`` uint8 (N, 32, 32, 3)
  (lerobot's float CHW in [0, 1] times 255, exact), ``actions`` float32 (N, 2), ``states``
  float32 (N, 4), ``episode_index`` and ``frame_index`` int64 (N,), ``lengths`` int64 (3,).
  ``image``'s frames equal the frames handed to ``add_frame`` (PNG is lossless); ``video``'s are
  lerobot's lossy decode of them (printed: the largest and the mean difference).

Our importer (main venv, without lerobot) is checked against these arrays by
``tests/test_lerobot_import.py``. lerobot is never a dependency of lewm-mpc (0.4.x pins
torch<2.8 and packaging<26); this runs in a separate venv::

    python3.11 -m venv /path/venv-lerobot && V=/path/venv-lerobot/bin
    $V/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   # or a wheel
    $V/pip install --no-deps lerobot==0.4.2 torchvision==0.22.1
    $V/pip install "datasets>=4.0,<4.2" "huggingface-hub>=0.34.2,<0.36" "av>=15,<16" \\
        "jsonlines>=4,<5" "packaging>=24.2,<26" draccus==0.10.0 "gymnasium>=1.1.1,<2" \\
        "einops>=0.8,<0.9" "opencv-python-headless>=4.9,<4.13" "deepdiff>=7.0.1,<9" \\
        "imageio[ffmpeg]>=2.34,<3" "termcolor>=2.4,<4" "accelerate>=1.10,<2" pyarrow pandas \\
        "setuptools>=71,<81"
    $V/python benchmarks/peers/lerobot_reference.py --out tests/data/lerobot_v30

(tested with Python 3.11, torch 2.13.0+cpu, torchvision 0.22.1, av 15.1.0, datasets 4.1.1,
pyarrow 26.0.1, pandas 3.1.1). Two workarounds, neither touching what lerobot writes or reads:

* torchcodec (lerobot's default decoder) is not installed, so lerobot falls back to its
  ``pyav`` backend, ``torchvision.io.VideoReader`` -- removed in torchvision 0.23, hence
  torchvision 0.22.1 (lerobot 0.4.2's own range is >=0.21,<0.23) installed without its torch pin;
* the PyPI torchvision wheel's compiled ops need CUDA torch libraries, so they do not load next
  to the CPU torch and ``import torchvision`` fails on registering a fake kernel for
  ``torchvision::nms``: :func:`allow_torchvision_without_ops` declares that op's schema first.
  No torchvision op is used (only ``transforms.ToTensor`` and the pure-Python ``VideoReader``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

FPS = 10
LENGTHS = (7, 9, 12)
SIZE = 32
CAMERA = "observation.image"
STATE = "observation.state"
REPO_ID = "lewm_mpc/reference"


def allow_torchvision_without_ops() -> object:
    """Declare ``torchvision::nms`` so torchvision imports without its compiled ops."""
    import torch

    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return library  # keep a reference: the definition lives as long as the library object


def pattern(episode: int, step: int) -> np.ndarray:
    """A deterministic frame, uint8 (SIZE, SIZE, 3): flat bands (they compress well, in the video
    and in the reference arrays) and a square that moves with ``step``."""
    frame = np.empty((SIZE, SIZE, 3), np.uint8)
    for band in range(4):
        rows = slice(8 * band, 8 * band + 8)
        frame[rows] = (40 + 50 * band, 60 + 40 * episode, 200 - 40 * band)
    top, left = 4 + (2 * step) % 20, 6 + (3 * step + 5 * episode) % 18
    frame[top : top + 8, left : left + 8] = (250, 250, 40)
    return frame


def action(episode: int, step: int) -> np.ndarray:
    return np.array(
        [np.sin(0.3 * step + episode), 0.5 * np.cos(0.2 * step) - 0.1 * episode], np.float32
    )


def state(episode: int, step: int) -> np.ndarray:
    return np.array([step, episode, 0.25 * step - 1.0, np.sin(step + 2.0 * episode)], np.float32)


def features(use_videos: bool) -> dict:
    return {
        CAMERA: {
            "dtype": "video" if use_videos else "image",
            "shape": (SIZE, SIZE, 3),
            "names": ["height", "width", "channels"],
        },
        STATE: {"dtype": "float32", "shape": (4,), "names": ["x", "y", "vx", "vy"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "dy"]},
    }


def write(root: Path, use_videos: bool) -> np.ndarray:
    """Write the dataset with lerobot's writer; return the frames given to it (N, S, S, 3)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset.create(
        REPO_ID, fps=FPS, features=features(use_videos), root=root, use_videos=use_videos
    )
    source = []
    for episode, length in enumerate(LENGTHS):
        for step in range(length):
            frame = pattern(episode, step)
            source.append(frame)
            dataset.add_frame(
                {
                    CAMERA: frame,
                    STATE: state(episode, step),
                    "action": action(episode, step),
                    "task": f"reach target {episode % 2}",
                }
            )
        dataset.save_episode()
    dataset.finalize()
    images = root / "images"  # lerobot's temporary PNGs: removed per episode, the folder stays
    if images.is_dir() and not any(path.is_file() for path in images.rglob("*")):
        shutil.rmtree(images)
    return np.stack(source)


def read(root: Path) -> dict[str, np.ndarray]:
    """Every frame of the dataset as lerobot's reader returns it."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(REPO_ID, root=root)
    items = [dataset[i] for i in range(len(dataset))]
    frames = np.stack([item[CAMERA].numpy() for item in items])  # (N, 3, S, S) float in [0, 1]
    as_bytes = np.rint(frames * 255.0)
    assert np.abs(as_bytes - frames * 255.0).max() < 1e-3, "lerobot's frames are not k / 255"
    return {
        "frames": as_bytes.astype(np.uint8).transpose(0, 2, 3, 1),  # (N, S, S, 3)
        "actions": np.stack([item["action"].numpy() for item in items]).astype(np.float32),
        "states": np.stack([item[STATE].numpy() for item in items]).astype(np.float32),
        "episode_index": np.array([int(item["episode_index"]) for item in items], np.int64),
        "frame_index": np.array([int(item["frame_index"]) for item in items], np.int64),
        "lengths": np.array([dataset.meta.episodes[e]["length"] for e in range(3)], np.int64),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    keep = allow_torchvision_without_ops()
    import av
    import lerobot

    args.out.mkdir(parents=True, exist_ok=True)
    for name, use_videos in (("video", True), ("image", False)):
        root = args.out / name
        if root.exists():
            shutil.rmtree(root)
        source = write(root, use_videos)
        reference = read(root)
        np.savez_compressed(args.out / f"{name}_reference.npz", **reference)
        error = np.abs(reference["frames"].astype(int) - source.astype(int))
        print(
            f"{name}: {len(source)} frames; lerobot's decoded frames vs the originals: "
            f"max |diff| {error.max()}, mean {error.mean():.3f}"
        )
    print(f"lerobot {lerobot.__version__}, av {av.__version__}, python {sys.version.split()[0]}")
    del keep


if __name__ == "__main__":
    main()
