"""Crashes and faults: SIGKILL the run inside a round and resume it; kill a scoring actor, a Train
worker and the coordinator mid-round and let Ray restart them. Either way the run must end with
the selection of an unbroken run."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.faults import HOOK_ENV, marker_name
from pipeline.run_store import RunStore
from tests.helpers import tiny_overrides
from tests.integration.conftest import NO_TARGET, selection
from tests.integration.test_cli import REPO, clactive, with_sets

pytestmark = pytest.mark.ray


def kill_at(point: str, args: list[str], run_dir: Path, ray_address: str, timeout_s: float = 180) -> None:
    """Start the CLI, wait until the run reaches `point` ("<round>:<stage>"), SIGKILL it."""
    at_round, stage = point.split(":")
    marker = run_dir / marker_name(int(at_round), stage)
    env = {**os.environ, "RAY_ADDRESS": ray_address, HOOK_ENV: f"{point}:pause"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert proc.poll() is None, f"the run ended ({proc.returncode}) before reaching {point}"
            assert time.monotonic() < deadline, f"the run did not reach {point} within {timeout_s} s"
            time.sleep(0.2)
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait()


# A kill while scoring leaves no more state behind than one while training, which also drops the
# live proxy: these two cover both resume paths (--resume RUN_DIR, and the same command again).
@pytest.mark.parametrize("point, resume_with", [("1:train", "--resume"), ("2:label", "the same command")])
def test_a_run_killed_inside_a_round_resumes_to_the_same_selection(ray_cluster, tiny_data_dir, tmp_path, unbroken,
                                                                   point, resume_with):
    run_dir = tmp_path / "run"
    args = with_sets(tiny_overrides(tiny_data_dir, tmp_path) + NO_TARGET)
    kill_at(point, args, run_dir, ray_cluster)
    killed_round = int(point.split(":")[0])
    assert RunStore(run_dir).committed_rounds() == list(range(killed_round))  # the partial round is invisible
    before = selection(run_dir)

    env = {"RAY_ADDRESS": ray_cluster}
    done = clactive("--resume", str(run_dir), env=env) if resume_with == "--resume" else clactive(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(resuming)" in done.stdout
    after = selection(run_dir)
    assert after[:killed_round] == before                  # no label lost or changed
    flat = [i for part in after for i in part]
    assert len(flat) == len(set(flat))                      # no label acquired twice
    assert after == unbroken                                # the same selection as an unbroken run
    assert sorted(p.name for p in run_dir.glob("rounds/*")) == ["0000", "0001", "0002"]
    if resume_with == "the same command":                   # and once more: a finished run does nothing
        stamp = (run_dir / "rounds.jsonl").stat().st_mtime_ns
        assert clactive(*args, env=env).returncode == 0
        assert (run_dir / "rounds.jsonl").stat().st_mtime_ns == stamp


def test_resuming_with_a_different_config_is_refused(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    RunStore.create(run_dir, load_config(None, tiny_overrides(tiny_data_dir, tmp_path)))
    done = clactive(*with_sets(tiny_overrides(tiny_data_dir, tmp_path) + ["update.steps=9"]))
    assert done.returncode == 2 and "holds a run with update.steps = 7, not 9" in done.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_a_scoring_actor_a_train_worker_and_the_coordinator_that_die_mid_round_are_restarted(
        ray_cluster, tiny_data_dir, tmp_path, unbroken):
    """One run, three faults: each process dies once (os._exit) inside a round and Ray brings up another."""
    faults = {"1:scorer": "a scoring actor, on its first batch",
              "1:train": "Ray Train worker rank 0, as the update starts",
              "2:label": "the coordinator, labels acquired but not committed"}
    done = clactive(*with_sets(tiny_overrides(tiny_data_dir, tmp_path) + NO_TARGET),
                    env={"RAY_ADDRESS": ray_cluster, HOOK_ENV: ",".join(f"{p}:crash" for p in faults)})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "run"
    for point, process in faults.items():
        at_round, stage = point.split(":")
        assert (run_dir / marker_name(int(at_round), stage)).is_file(), f"{process} never crashed"
    assert selection(run_dir) == unbroken
