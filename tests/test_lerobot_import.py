"""Importing LeRobot datasets (lewm_mpc.data.interop.import_lerobot), checked against lerobot.

The fixture ``tests/data/lerobot_v30`` was written by lerobot 0.4.2's own writer and read back by
its own reader (``benchmarks/peers/lerobot_reference.py``, in a separate venv): 3 episodes of 7, 9
and 12 frames at 10 fps, a 32x32 camera ``observation.image`` stored as AV1 video (``video/``) and
as PNG images (``image/``), 2-d actions, 4-d states. ``<kind>_reference.npz`` holds what
``LeRobotDataset(...)[i]`` returned. The video frames are lossy, but our PyAV decode of them is
lerobot's exactly (measured: max difference 0), so frames compare exactly in both variants.
v2.1 copies are built here from the v3.0 files (one parquet and one mp4 per episode, the mp4
packets copied, not re-encoded), so they must import to the same dataset.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.cli import main
from lewm_mpc.data import EpisodeDataset, WindowSampler
from lewm_mpc.data.format import DATA_KEYS
from lewm_mpc.data.interop import import_lerobot, lerobot_reader
from lewm_mpc.data.writer import stray_tmp_files
from lewm_mpc.training import TrainConfig, train

FIXTURES = Path(__file__).resolve().parent / "data" / "lerobot_v30"
KINDS = ("video", "image")
LENGTHS = (7, 9, 12)
CAMERA = "observation.image"
DATA_FILE = "data/chunk-000/file-000.parquet"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
VIDEO_FILE = f"videos/{CAMERA}/chunk-000/file-000.mp4"


def reference(kind: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{kind}_reference.npz") as arrays:
        return dict(arrays)


def episode_rows(number: int) -> slice:
    start = sum(LENGTHS[:number])
    return slice(start, start + LENGTHS[number])


def assert_same(first: EpisodeDataset, second: EpisodeDataset, keys=DATA_KEYS) -> None:
    for key in keys:
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key), err_msg=key)
    assert first.meta == second.meta


# ------------------------------------------------------------------ copies of the fixture
def copy_of(kind: str, root: Path) -> Path:
    """A writable copy of fixture ``kind`` under ``root``."""
    target = root / f"lerobot_{kind}"
    shutil.copytree(FIXTURES / kind, target)
    return target


def edit_info(dataset: Path, **changes) -> Path:
    path = dataset / "meta" / "info.json"
    info = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            info.pop(key, None)
        else:
            info[key] = value
    path.write_text(json.dumps(info, indent=4))
    return dataset


def edit_features(dataset: Path, drop: tuple[str, ...] = (), **add) -> Path:
    info = json.loads((dataset / "meta" / "info.json").read_text())
    features = {k: v for k, v in info["features"].items() if k not in drop}
    return edit_info(dataset, features={**features, **add})


def edit_column(path: Path, name: str, change) -> None:
    """Rewrite parquet column ``name`` of ``path`` as ``change(values)`` (numpy, same shape)."""
    table = pq.read_table(path)
    column = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        values = change(column.flatten().to_numpy().reshape(len(column), column.type.list_size))
        new = pa.FixedSizeListArray.from_arrays(
            pa.array(values.ravel(), column.type.value_type), column.type.list_size
        )
    else:
        new = pa.array(change(column.to_numpy()), column.type)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, new), path)


def broken(kind: str, fault: str, root: Path) -> Path:
    """A copy of fixture ``kind`` with one fault."""
    dataset = copy_of(kind, root)
    if fault == "version":
        edit_info(dataset, codebase_version="v1.6")
    elif fault == "nan_action":

        def nan_row_3(action):
            action = action.copy()
            action[3, 1] = np.nan
            return action

        edit_column(dataset / DATA_FILE, "action", nan_row_3)
    elif fault == "length":
        edit_column(dataset / EPISODES_FILE, "length", lambda length: length + np.array([0, 1, 0]))
    elif fault == "no_video":
        (dataset / VIDEO_FILE).unlink()
    elif fault == "no_action":
        edit_features(dataset, drop=("action",))
    elif fault == "two_cameras":
        wrist = {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]}
        edit_features(dataset, **{"observation.images.wrist": wrist})
    else:
        raise ValueError(fault)
    return dataset


_SCRATCH: list[tempfile.TemporaryDirectory] = []


def import_broken(kind: str, fault: str | None) -> Path:
    """Import a copy of fixture ``kind`` with one fault (``None``: an empty folder) from a
    temporary folder removed at exit (for the bad-input table, whose rows take no fixture)."""
    _SCRATCH.append(tempfile.TemporaryDirectory(prefix="lewm_mpc-lerobot-"))
    root = Path(_SCRATCH[-1].name)
    return import_lerobot(root if fault is None else broken(kind, fault, root), root / "out.h5")


def as_v21(kind: str, root: Path) -> Path:
    """Fixture ``kind`` in LeRobot's v2.1 layout: one parquet and one mp4 per episode."""
    import av

    source, target = FIXTURES / kind, root / f"v21_{kind}"
    (target / "meta").mkdir(parents=True)
    info = json.loads((source / "meta" / "info.json").read_text())
    info["codebase_version"] = "v2.1"
    info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    if info.get("video_path"):
        info["video_path"] = (
            "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        )
    (target / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    episodes = pq.read_table(source / EPISODES_FILE).to_pylist()
    with (target / "meta" / "episodes.jsonl").open("w") as listing:
        for episode in episodes:
            entry = {key: episode[key] for key in ("episode_index", "tasks", "length")}
            listing.write(json.dumps(entry) + "\n")
    data = pq.read_table(source / DATA_FILE)
    for number in range(len(LENGTHS)):
        path = target / f"data/chunk-000/episode_{number:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.slice(episode_rows(number).start, LENGTHS[number]), path)
    if kind == "video":
        for number, episode in enumerate(episodes):
            start = episode[f"videos/{CAMERA}/from_timestamp"]
            end = episode[f"videos/{CAMERA}/to_timestamp"]
            path = target / f"videos/chunk-000/{CAMERA}/episode_{number:06d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(source / VIDEO_FILE)) as file, av.open(str(path), "w") as out:
                stream = file.streams.video[0]
                copy = out.add_stream_from_template(stream, opaque=True)
                copy.time_base = stream.time_base
                shift = round(start / stream.time_base)
                for packet in file.demux(stream):
                    time = float(packet.pts * stream.time_base) if packet.dts is not None else -1
                    if not start - 0.05 <= time < end - 0.05:  # half a frame of margin
                        continue
                    packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                    packet.stream = copy
                    out.mux(packet)
    return target


# ------------------------------------------------------------------------------ imports
@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, EpisodeDataset]:
    folder = tmp_path_factory.mktemp("lerobot")
    return {
        kind: EpisodeDataset.load(import_lerobot(FIXTURES / kind, folder / f"{kind}.h5"))
        for kind in KINDS
    }


@pytest.mark.parametrize("kind", KINDS)
def test_the_import_holds_what_lerobot_reads(imported, kind):
    dataset, expected = imported[kind], reference(kind)
    np.testing.assert_array_equal(dataset.episode_ids, [0, 1, 2])
    np.testing.assert_array_equal(dataset.episode_lengths, expected["lengths"])
    np.testing.assert_array_equal(dataset.episode_idx, expected["episode_index"])
    np.testing.assert_array_equal(dataset.step_idx, expected["frame_index"])
    np.testing.assert_array_equal(dataset.pixels[:], expected["frames"])  # lerobot's decode
    np.testing.assert_array_equal(dataset.state, expected["states"].astype(np.float64))
    last = np.cumsum(LENGTHS) - 1
    assert np.isnan(dataset.action[last]).all()
    used = np.delete(np.arange(sum(LENGTHS)), last)
    np.testing.assert_array_equal(dataset.action[used], expected["actions"][used])
    meta = dataset.meta
    assert meta.action_block == 1 and meta.control_hz == 10.0 and meta.data_policy == "imported"
    assert meta.env_id is None  # the fixture's robot_type is null
    assert meta.action_low == tuple(expected["actions"][used].min(axis=0).astype(np.float64))
    assert meta.action_high == tuple(expected["actions"][used].max(axis=0).astype(np.float64))
    assert meta.observation("pixels").shape == (32, 32, 3)
    assert meta.observation("state").shape == (4,)


def test_video_and_image_variants_differ_only_in_the_lossy_frames(imported):
    assert_same(imported["video"], imported["image"], [k for k in DATA_KEYS if k != "pixels"])
    loss = np.abs(imported["video"].pixels[:].astype(int) - imported["image"].pixels[:])
    assert 0 < loss.mean() < 10  # AV1 at crf 30 on 32 px frames


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("frameskip", [2, 3])
def test_frameskip_keeps_every_kth_frame_and_joins_the_actions(tmp_path, kind, frameskip):
    expected = reference(kind)
    path = import_lerobot(FIXTURES / kind, tmp_path / "out.h5", frameskip=frameskip, chunk_rows=4)
    dataset = EpisodeDataset.load(path)
    kept = [(length - 1) // frameskip + 1 for length in LENGTHS]
    np.testing.assert_array_equal(dataset.episode_lengths, kept)
    assert dataset.action_dim == 2 * frameskip and dataset.meta.action_block == frameskip
    assert dataset.meta.control_hz == 10.0 / frameskip
    for number in range(len(LENGTHS)):
        rows = episode_rows(number)
        episode = dataset.episode(number)
        np.testing.assert_array_equal(episode.pixels, expected["frames"][rows][::frameskip])
        np.testing.assert_array_equal(episode.state, expected["states"][rows][::frameskip])
        blocks = kept[number] - 1
        actions = expected["actions"][rows][: blocks * frameskip]  # (b * k, 2)
        np.testing.assert_array_equal(episode.action[:-1], actions.reshape(blocks, 2 * frameskip))
        assert np.isnan(episode.action[-1]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_image_size_resizes_with_pil_bilinear(tmp_path, kind):
    expected = reference(kind)["frames"]
    dataset = EpisodeDataset.load(import_lerobot(FIXTURES / kind, tmp_path / "a.h5", image_size=16))
    resized = [
        np.asarray(Image.fromarray(frame).resize((16, 16), Image.Resampling.BILINEAR))
        for frame in expected
    ]
    np.testing.assert_array_equal(dataset.pixels[:], np.stack(resized))
    assert dataset.meta.observation("pixels").shape == (16, 16, 3)
    same = EpisodeDataset.load(import_lerobot(FIXTURES / kind, tmp_path / "b.h5", image_size=32))
    np.testing.assert_array_equal(same.pixels[:], expected)


@pytest.mark.parametrize("kind", KINDS)
def test_an_episode_subset_keeps_its_indices(tmp_path, kind, monkeypatch):
    expected = reference(kind)
    for picked in ([2, 0], [1]):
        out = tmp_path / f"{kind}_{len(picked)}.h5"
        dataset = EpisodeDataset.load(import_lerobot(FIXTURES / kind, out, episodes=picked))
        np.testing.assert_array_equal(dataset.episode_ids, sorted(picked))
        for number in picked:
            episode = dataset.episode(number)
            np.testing.assert_array_equal(episode.pixels, expected["frames"][episode_rows(number)])
    monkeypatch.setattr(lerobot_reader, "_SEEK_AHEAD_S", 0.0)  # seek before every chunk
    seeking = import_lerobot(FIXTURES / kind, tmp_path / "seek.h5", episodes=[0, 2], chunk_rows=2)
    np.testing.assert_array_equal(
        EpisodeDataset.load(seeking).pixels[:],
        np.concatenate([expected["frames"][episode_rows(0)], expected["frames"][episode_rows(2)]]),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_v21_layout_imports_alike(imported, tmp_path, kind):
    path = import_lerobot(as_v21(kind, tmp_path), tmp_path / "v21.h5", chunk_rows=5)
    assert_same(EpisodeDataset.load(path), imported[kind])


def test_reads_stream_in_chunks(tmp_path, monkeypatch, imported):
    taken = []
    real_take = lerobot_reader._Rows.take

    def recording_take(self, start, count):
        taken.append(count)
        return real_take(self, start, count)

    monkeypatch.setattr(lerobot_reader._Rows, "take", recording_take)
    path = import_lerobot(FIXTURES / "image", tmp_path / "out.h5", chunk_rows=4)
    assert taken and max(taken) <= 4
    assert_same(EpisodeDataset.load(path), imported["image"])


def test_a_dataset_without_state_gets_the_time_as_state(tmp_path):
    dataset = edit_features(copy_of("video", tmp_path), drop=("observation.state",))
    loaded = EpisodeDataset.load(import_lerobot(dataset, tmp_path / "out.h5", frameskip=2))
    times = np.concatenate([np.arange(length)[::2] / 10.0 for length in LENGTHS])
    np.testing.assert_allclose(loaded.state[:, 0], times, atol=1e-6)
    assert loaded.state_dim == 1
    other = import_lerobot(dataset, tmp_path / "other.h5", state_key="action", env_id="my/Bot")
    assert EpisodeDataset.load(other).meta.env_id == "my/Bot"


def test_frames_must_have_the_size_info_json_gives(tmp_path):
    wide = {"dtype": "video", "shape": [32, 48, 3], "names": ["height", "width", "channels"]}
    dataset = edit_features(copy_of("video", tmp_path), **{CAMERA: wide})
    message = (
        "a frame of episode 0 is 32x32; meta/info.json says camera 'observation.image' is 32x48"
    )
    with pytest.warns(UserWarning, match="32x48, not square"), pytest.raises(ValueError) as info:
        import_lerobot(dataset, tmp_path / "out.h5")
    assert message in str(info.value)


def test_the_dataset_samples_windows_and_trains(tmp_path):
    path = import_lerobot(FIXTURES / "video", tmp_path / "ours.h5", image_size=16)
    dataset = EpisodeDataset.load(path)
    batch = WindowSampler(dataset, dataset.episode_ids, 3, 1, batch_size=4).sample()
    assert batch.obs.shape == (4, 3, 16, 16, 3) and np.isfinite(batch.actions).all()
    config = TrainConfig(steps=2, batch_size=4, num_frames=3, val_every=2, val_batches=1,
                         checkpoint_every=2, sigreg_projections=16, warmup_steps=1,
                         bn_calibration_batches=2, device="cpu")  # fmt: skip
    summary = train(path, tmp_path / "run", tiny_config(action_block=1), config, progress=False)
    assert summary.steps == 2 and np.isfinite(summary.val_loss)
    assert WorldModel.load(tmp_path / "run").run_meta.dataset.path == str(path)


def test_the_command_line_imports_and_prints_one_line(tmp_path, capsys, imported):
    out = tmp_path / "ours.h5"
    argv = ["import", "lerobot", str(FIXTURES / "video"), "--out", str(out)]
    assert main([*argv, "--frameskip", "2", "--image-size", "16", "--episodes", "0,2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"imported {FIXTURES / 'video'} -> {out}"]
    dataset = EpisodeDataset.load(out)
    np.testing.assert_array_equal(dataset.episode_ids, [0, 2])
    assert dataset.image_shape == (16, 16, 3) and dataset.meta.action_block == 2
    assert main(argv) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--camera", "observation.images.top"]) == 2
    assert "no image or video feature 'observation.images.top'" in capsys.readouterr().err
    swm = ["import", "swm", str(out), "--out", str(tmp_path / "x.h5"), "--camera", "c"]
    assert main(swm) == 2
    assert "--camera: only for `import lerobot`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "fault", "message"),
    [
        ("video", "version", "codebase_version 'v1.6' is not supported"),
        ("image", "nan_action", "'action' of episode 0, frame 3 is not finite"),
        ("video", "length", "episode 1 has 9 rows, but meta/episodes/ says its length is 10"),
        ("video", "no_video", "file-000.mp4: video file not found"),
        ("image", "no_action", "no feature 'action' for the action"),
        ("video", "two_cameras", "choose one with camera="),
    ],
)
def test_bad_datasets_are_refused(tmp_path, kind, fault, message):
    with pytest.raises(ValueError) as info:
        import_lerobot(broken(kind, fault, tmp_path), tmp_path / "out.h5")
    assert message in str(info.value)
    assert not (tmp_path / "out.h5").exists() and not stray_tmp_files(tmp_path / "out.h5")


def test_other_refusals(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"is not a LeRobot dataset: no meta/info\.json"):
        import_lerobot(tmp_path, tmp_path / "out.h5")
    with pytest.raises(FileNotFoundError):
        import_lerobot(tmp_path / "missing", tmp_path / "out.h5")
    with pytest.raises(ValueError, match=r"no episode \[5\] \(its 3 episodes: 0..2\)"):
        import_lerobot(FIXTURES / "image", tmp_path / "out.h5", episodes=[0, 5])
    with pytest.raises(ValueError, match="state"):
        import_lerobot(FIXTURES / "image", tmp_path / "out.h5", state_key="observation.image")
    with pytest.raises(ValueError, match="image_size must be an int >= 1"):
        import_lerobot(FIXTURES / "image", tmp_path / "out.h5", image_size=0)
    monkeypatch.setitem(sys.modules, "av", None)  # the extra is not installed
    with pytest.raises(ImportError, match=r"pip install 'lewm-mpc\[lerobot\]'"):
        import_lerobot(FIXTURES / "image", tmp_path / "out.h5")
