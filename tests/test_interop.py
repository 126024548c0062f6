"""Tests of lewm_mpc.data.interop: stable-worldmodel HDF5 and numpy import/export."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from lewm_mpc.data import EpisodeDataset, WindowSampler, export_swm, import_npz, import_swm
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.data.format import DATA_KEYS
from lewm_mpc.data.interop import importing
from lewm_mpc.data.writer import stray_tmp_files

LENGTHS = (7, 4)  # rows of the two hand-written episodes
ACTION_DIM = 2


def swm_arrays(lengths=LENGTHS, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of an swm file: NaN last actions, ``ep_idx`` naming, ids 5, 9, ...."""
    rng = np.random.default_rng(seed)
    num_rows = sum(lengths)
    offsets = np.cumsum(lengths) - np.array(lengths)
    action = rng.uniform(-2.0, 3.0, (num_rows, ACTION_DIM)).astype(np.float32)
    action[offsets + np.array(lengths) - 1] = np.nan
    return {
        "pixels": rng.integers(0, 256, (num_rows, 6, 5, 3), dtype=np.uint8),
        "state": rng.normal(size=(num_rows, 3)).astype(np.float32),
        "action": action,
        "ep_idx": np.repeat(5 + 4 * np.arange(len(lengths)), lengths).astype(np.int32),
        "step_idx": np.concatenate([np.arange(length) for length in lengths]),
        "ep_len": np.array(lengths, dtype=np.int32),
        "ep_offset": offsets.astype(np.int64),
    }


def write_swm(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file[key] = value
    return path


def assert_same(first: EpisodeDataset, second: EpisodeDataset) -> None:
    for key in DATA_KEYS:
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key), err_msg=key)
    assert first.meta == second.meta
    assert first.meta.observations == second.meta.observations


@pytest.fixture(scope="module", params=[1, 5], ids=["steps", "blocks"])
def ours(request, tmp_path_factory) -> Path:
    """3 Two-Room episodes of 10 env steps, collected per step or in blocks of 5."""
    path = tmp_path_factory.mktemp("ours") / "tworoom.h5"
    return collect_dataset(
        "tworoom", path, 3, 10, seed=0, progress=False, action_block=request.param
    )


def test_round_trip_is_lossless(ours, tmp_path):
    original = EpisodeDataset.load(ours)
    swm = export_swm(ours, tmp_path / "swm.h5", chunk_rows=4)
    with h5py.File(swm, "r") as file:
        lengths, offsets = file["ep_len"][:], file["ep_offset"][:]
        assert file["ep_len"].dtype == np.int32 and file["ep_offset"].dtype == np.int64
        np.testing.assert_array_equal(lengths, original.episode_lengths)
        np.testing.assert_array_equal(offsets, original.episode_starts)
        action = file["action"][:]
        assert action.shape == (original.num_rows, original.action_block * 2)
        assert np.isnan(action[offsets + lengths - 1]).all()
        assert file.attrs["frameskip"] == original.action_block
        assert json.loads(file.attrs["lewm_mpc_meta"])["env_id"] == original.meta.env_id
        for key in DATA_KEYS:
            np.testing.assert_array_equal(file[key][:], getattr(original, key), err_msg=key)
    back = EpisodeDataset.load(import_swm(swm, tmp_path / "back.h5", chunk_rows=3, progress=True))
    assert_same(back, original)
    with h5py.File(swm, "r") as file:  # the same columns and meta as plain arrays
        arrays = {key: file[key][:] for key in file}
        arrays["lewm_mpc_meta"] = np.asarray(file.attrs["lewm_mpc_meta"])
    np.savez(tmp_path / "swm.npz", **arrays)
    assert_same(
        EpisodeDataset.load(import_npz(tmp_path / "swm.npz", tmp_path / "npz.h5")), original
    )


def test_restored_meta_with_frameskip(ours, tmp_path):
    original = EpisodeDataset.load(ours)
    swm = export_swm(ours, tmp_path / "swm.h5")
    imported = EpisodeDataset.load(import_swm(swm, tmp_path / "fs2.h5", frameskip=2))
    assert imported.action_block == 2 * original.action_block
    assert imported.meta.control_hz == original.meta.control_hz / 2
    assert imported.meta.env_id == original.meta.env_id
    assert imported.action_dim == 2 * original.action_dim
    first = original.episode(0)
    np.testing.assert_array_equal(imported.episode(0).pixels, first.pixels[::2])


def test_frameskip_import_equals_block_collection(tmp_path):
    """Collecting in blocks of 5 keeps every 5th frame and groups actions by 5: so does an import
    with frameskip 5 of the per-step collection (its meta included)."""
    steps = collect_dataset("tworoom", tmp_path / "k1.h5", 3, 10, seed=0, progress=False)
    blocks = collect_dataset(
        "tworoom", tmp_path / "k5.h5", 3, 10, seed=0, progress=False, action_block=5
    )
    swm = export_swm(steps, tmp_path / "swm.h5")
    imported = EpisodeDataset.load(import_swm(swm, tmp_path / "fs5.h5", frameskip=5))
    assert_same(imported, EpisodeDataset.load(blocks))


@pytest.mark.parametrize("frameskip", [1, 2])
def test_hand_written_swm_file(tmp_path, frameskip):
    arrays = swm_arrays()
    swm = write_swm(tmp_path / "swm.h5", arrays)
    path = import_swm(swm, tmp_path / "ours.h5", frameskip=frameskip, control_hz=10.0)
    dataset = EpisodeDataset.load(path)
    kept = [(length - 1) // frameskip + 1 for length in LENGTHS]  # [4, 2] with frameskip 2
    assert dataset.num_rows == sum(kept)
    np.testing.assert_array_equal(dataset.episode_ids, [5, 9])
    np.testing.assert_array_equal(dataset.episode_lengths, kept)
    assert dataset.action_dim == frameskip * ACTION_DIM
    assert dataset.meta.action_block == frameskip
    assert dataset.meta.control_hz == 10.0 / frameskip
    assert dataset.meta.data_policy == "imported"
    used = []  # the source actions the dataset holds, in order
    for number, (offset, length) in enumerate(zip(arrays["ep_offset"], LENGTHS, strict=True)):
        episode = dataset.episode([5, 9][number])
        frames = slice(offset, offset + length)
        np.testing.assert_array_equal(episode.pixels, arrays["pixels"][frames][::frameskip])
        np.testing.assert_array_equal(episode.state, arrays["state"][frames][::frameskip])
        blocks = kept[number] - 1
        actions = arrays["action"][offset : offset + blocks * frameskip]  # (b * k, A)
        np.testing.assert_array_equal(episode.action[:-1], actions.reshape(blocks, -1))
        assert np.isnan(episode.action[-1]).all()
        used.append(actions)
    used = np.concatenate(used)
    assert np.isfinite(used).all()  # the NaN last actions (and frameskip 2's partial block) dropped
    assert dataset.meta.action_low == tuple(used.min(axis=0).astype(np.float64))
    assert dataset.meta.action_high == tuple(used.max(axis=0).astype(np.float64))
    sampler = WindowSampler(dataset, dataset.episode_ids, 2, 1, batch_size=3)
    batch = sampler.sample()
    assert batch.obs.shape == (3, 2, 6, 5, 3)
    assert batch.actions.shape == (3, 2, frameskip * ACTION_DIM)
    assert np.isfinite(batch.actions).all()


def test_accepted_variants_import_alike(tmp_path):
    """Episodes from ep_idx runs or ep_len; state from a proprio/... group; explicit bounds."""
    arrays = swm_arrays()
    reference = EpisodeDataset.load(
        import_swm(write_swm(tmp_path / "a.h5", arrays), tmp_path / "a")
    )
    runs = {key: value for key, value in arrays.items() if key not in ("ep_len", "ep_offset")}
    from_runs = import_swm(write_swm(tmp_path / "b.h5", runs), tmp_path / "b")
    assert_same(EpisodeDataset.load(from_runs), reference)
    grouped = {key: value for key, value in arrays.items() if key != "state"}
    grouped["proprio/a_pos"] = arrays["state"][:, :2]
    grouped["proprio/b_vel"] = arrays["state"][:, 2:]
    from_group = import_swm(write_swm(tmp_path / "c.h5", grouped), tmp_path / "c")
    assert_same(EpisodeDataset.load(from_group), reference)
    bounded = EpisodeDataset.load(
        import_swm(
            tmp_path / "a.h5", tmp_path / "d", action_low=(-5, -5), action_high=(5, 5), env_id="x/Y"
        )
    )
    assert bounded.meta.action_low == (-5.0, -5.0) and bounded.meta.env_id == "x/Y"


@pytest.mark.parametrize("frameskip", [1, 2])
def test_npz_import_equals_swm_import(tmp_path, frameskip):
    arrays = swm_arrays(seed=1)
    swm = import_swm(write_swm(tmp_path / "s.h5", arrays), tmp_path / "s", frameskip=frameskip)
    np.savez(tmp_path / "a.npz", **arrays)
    from_file = import_npz(tmp_path / "a.npz", tmp_path / "f", frameskip=frameskip)
    from_dict = import_npz(arrays, tmp_path / "d", frameskip=frameskip)
    expected = EpisodeDataset.load(swm)
    assert_same(EpisodeDataset.load(from_file), expected)
    assert_same(EpisodeDataset.load(from_dict), expected)


def without(arrays: dict, *keys: str, **changes) -> dict:
    return {**{key: value for key, value in arrays.items() if key not in keys}, **changes}


BASE = swm_arrays()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (without(BASE, "action"), "no 'action' column"),
        (without(BASE, pixels=BASE["pixels"].astype(np.float32)), r"'pixels' must be uint8 \(N, H"),
        (without(BASE, pixels=BASE["pixels"].transpose(0, 3, 1, 2)), "channels last"),
        (without(BASE, "pixels"), "no 'pixels' column"),
        (without(BASE, "state"), "no state column"),
        (without(BASE, "ep_len", "ep_offset", "ep_idx"), "no episode structure"),
        (without(BASE, action=np.full_like(BASE["action"], np.nan)), "action row 0"),
        (without(BASE, state=BASE["state"][:-1]), "N = 11 rows"),
    ],
    ids=["no-action", "float-pixels", "chw", "no-pixels", "no-state", "no-episodes", "nan", "rows"],
)
def test_bad_inputs_are_refused(tmp_path, arrays, match):
    with pytest.raises(ValueError, match=match):
        import_swm(write_swm(tmp_path / "bad.h5", arrays), tmp_path / "out.h5")
    with pytest.raises(ValueError, match=match):
        import_npz(arrays, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists() and not stray_tmp_files(tmp_path / "out.h5")


def test_other_refusals(tmp_path):
    swm = write_swm(tmp_path / "swm.h5", BASE)
    out = import_swm(swm, tmp_path / "out.h5")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        import_swm(swm, out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_swm(out, swm)
    assert import_swm(swm, out, overwrite=True, frameskip=2) == out
    assert EpisodeDataset.load(out).action_block == 2
    with pytest.raises(ValueError, match="give both"):
        import_swm(swm, tmp_path / "x.h5", action_low=(-1.0, -1.0))
    with pytest.raises(ValueError, match="frameskip must be an int >= 1"):
        import_swm(swm, tmp_path / "x.h5", frameskip=0)
    short = swm_arrays(lengths=(2, 2))  # one action per episode: none left with frameskip 2
    with pytest.raises(ValueError, match="no finite action"):
        import_npz(short, tmp_path / "x.h5", frameskip=2)
    with pytest.raises(ValueError, match="not a readable lewm_mpc dataset"):
        export_swm(swm, tmp_path / "x.h5")  # an swm file is not one of ours
    with pytest.raises(FileNotFoundError):
        import_swm(tmp_path / "missing.h5", tmp_path / "x.h5")
    np.save(tmp_path / "one.npy", BASE["action"])
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        import_npz(tmp_path / "one.npy", tmp_path / "x.h5")


def test_a_failed_import_leaves_nothing(tmp_path, monkeypatch):
    swm = write_swm(tmp_path / "swm.h5", BASE)
    calls = []
    real_read = importing._read

    def failing_read(*args):
        calls.append(args)
        if len(calls) > 6:  # after the pre-pass, in the middle of writing
            raise KeyboardInterrupt
        return real_read(*args)

    monkeypatch.setattr(importing, "_read", failing_read)
    with pytest.raises(KeyboardInterrupt):
        import_swm(swm, tmp_path / "out.h5", chunk_rows=2)
    assert not (tmp_path / "out.h5").exists() and not stray_tmp_files(tmp_path / "out.h5")


@pytest.fixture
def read_sizes(monkeypatch) -> dict[str, list[int]]:
    """Rows returned by every read of an h5py dataset, by dataset name."""
    sizes: dict[str, list[int]] = {}
    real_getitem = h5py.Dataset.__getitem__

    def recording_getitem(self, index, *args, **kwargs):
        values = real_getitem(self, index, *args, **kwargs)
        sizes.setdefault(self.name.lstrip("/"), []).append(np.shape(values)[0] if self.ndim else 1)
        return values

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_getitem)
    return sizes


@pytest.mark.parametrize("frameskip", [1, 3])
def test_import_streams(tmp_path, read_sizes, frameskip):
    chunk = 8
    swm = write_swm(tmp_path / "swm.h5", swm_arrays(lengths=(30, 23, 9)))  # 62 rows
    read_sizes.clear()
    import_swm(swm, tmp_path / "out.h5", frameskip=frameskip, chunk_rows=chunk)
    assert set(read_sizes) >= {"pixels", "state", "action", "ep_idx"}
    for name in ("pixels", "state", "action", "ep_idx"):
        assert max(read_sizes[name]) <= chunk, name
    assert max(read_sizes["pixels"]) == chunk // frameskip  # kept frames only
    expected = sum((length - 1) // frameskip + 1 for length in (30, 23, 9))
    assert EpisodeDataset.load(tmp_path / "out.h5").num_rows == expected


@pytest.mark.parametrize("layout", ["ours", "contiguous"])
def test_export_streams(tmp_path, read_sizes, layout):
    """Ours' compressed one-frame chunks are copied as they are; other layouts, read in chunks."""
    chunk = 4
    path = collect_dataset("tworoom", tmp_path / "ours.h5", 2, 10, seed=0, progress=False)
    original = EpisodeDataset.load(path)
    if layout == "contiguous":
        with h5py.File(path, "r+") as file:
            del file["pixels"]
            file["pixels"] = original.pixels
    read_sizes.clear()
    export_swm(path, tmp_path / "swm.h5", chunk_rows=chunk, progress=True)
    assert {"state", "action", "episode_idx", "step_idx"} <= set(read_sizes)
    assert ("pixels" in read_sizes) == (layout == "contiguous")
    assert max(max(sizes) for sizes in read_sizes.values()) <= chunk
    with h5py.File(tmp_path / "swm.h5", "r") as file:
        assert file["pixels"].shape[0] == 22 > chunk
    assert_same(
        EpisodeDataset.load(import_swm(tmp_path / "swm.h5", tmp_path / "back.h5")), original
    )


def test_the_command_line_converts_both_ways(tmp_path, capsys):
    from lewm_mpc.cli import main

    ours = collect_dataset("tworoom", tmp_path / "ours.h5", 2, 8, seed=0, progress=False)
    assert main(["export", "swm", str(ours), "--out", str(tmp_path / "swm.h5")]) == 0
    back = tmp_path / "back.h5"
    assert main(["import", "swm", str(tmp_path / "swm.h5"), "--out", str(back)]) == 0
    np.testing.assert_array_equal(
        EpisodeDataset.load(back).pixels[:], EpisodeDataset.load(ours).pixels[:]
    )
    assert main(["import", "swm", str(tmp_path / "swm.h5"), "--out", str(back)]) == 2
    assert "--overwrite" in capsys.readouterr().err
