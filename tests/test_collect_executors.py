"""Collection executors: Ray tasks (a stand-in scheduler here, the real one in a slow test)
give the same dataset as a local collection, write parts as tasks finish, and resume."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from lewm_mpc import ray_support
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset

EPISODES = 40  # two chunks of the default 32 episodes


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Ref:
    """A task's handle (hashable by identity, like Ray's ObjectRef)."""

    def __init__(self, call) -> None:
        self.call = call


class _Remote:
    def __init__(self, submit) -> None:
        self.remote = submit


class FakeRay:
    """Ray's task API run inline; tasks finish in reverse submission order."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.initialized = False
        self.submitted: list[int] = []
        self.cancelled = 0
        self.fail_after = fail_after

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options) -> None:
        self.initialized = True
        self.options = options

    def shutdown(self) -> None:
        self.initialized = False

    def remote(self, function):
        def submit(*args):
            self.submitted.append(args[2].first)  # (make_env, make_policy, chunk, meta)
            return Ref(lambda: function(*args))

        return _Remote(submit)

    def wait(self, refs, num_returns):
        return refs[-num_returns:], refs[:-num_returns]

    def get(self, ref):
        if self.fail_after is not None and self.fail_after == 0:
            raise RuntimeError("worker died")
        if self.fail_after is not None:
            self.fail_after -= 1
        return ref.call()

    def cancel(self, ref, force: bool) -> None:
        self.cancelled += 1


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("local") / "d.h5"
    return collect_dataset("tworoom", path, EPISODES, 20, seed=3, progress=False)


def test_ray_tasks_give_the_local_dataset(local_dataset, tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(ray_support, "import_ray", lambda: fake)
    path = tmp_path / "d.h5"
    collect_dataset(
        "tworoom", path, EPISODES, 20, seed=3, progress=False, executor="ray", workers=2
    )
    assert digest(path) == digest(local_dataset)
    assert fake.options["num_cpus"] == 2 and not fake.initialized  # started here, shut down
    assert not path.with_name("d.h5.parts").exists()


def test_an_interrupted_ray_collection_keeps_finished_chunks(local_dataset, tmp_path, monkeypatch):
    fake = FakeRay(fail_after=1)  # one chunk (the last submitted) arrives, then a failure
    monkeypatch.setattr(ray_support, "import_ray", lambda: fake)
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError, match="worker died"):
        collect_dataset("tworoom", path, EPISODES, 20, seed=3, progress=False, executor="ray")
    parts = sorted(p.name for p in path.with_name("d.h5.parts").iterdir())
    assert parts == ["part-000032-000039.h5"]  # chunks of 32 episodes: the second one arrived
    fake = FakeRay()
    monkeypatch.setattr(ray_support, "import_ray", lambda: fake)
    collect_dataset("tworoom", path, EPISODES, 20, seed=3, progress=False, executor="ray")
    assert fake.submitted == [0]  # the finished chunk is not collected again
    assert digest(path) == digest(local_dataset)


def test_an_unknown_executor_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        collect_dataset("tworoom", tmp_path / "d.h5", 2, 10, executor="slurm")


def test_ray_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"lewm-mpc\[ray\]"):
        collect_dataset("tworoom", tmp_path / "d.h5", 2, 10, progress=False, executor="ray")


@pytest.mark.slow
def test_a_real_ray_cluster_collects_the_local_dataset(local_dataset, tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra")
    path = tmp_path / "d.h5"
    collect_dataset(
        "tworoom", path, EPISODES, 20, seed=3, progress=False, executor="ray", workers=2
    )
    assert digest(path) == digest(local_dataset)
    assert EpisodeDataset.load(path).num_episodes == EPISODES
