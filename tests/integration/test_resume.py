"""Crashes and faults: SIGKILL the run inside a round and resume it; kill a scoring actor, a Train
worker and the coordinator mid-round and let Ray restart them. Either way the run must end with
the selection of an unbroken run."""

import io
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
import torch
from ray.util.state import list_actors, list_jobs

import pipeline.cli
from actors.faults import HOOK_ENV, marker_name
from pipeline.config.run_config import load_config
from pipeline.loop.run_store import RunStore
from pipeline.storage import Storage
from tests.helpers import tiny_overrides
from tests.integration.conftest import selection, two_round_args
from tests.integration.test_cli import REPO, clactive, with_sets
from tests.s3_server import s3_server

pytestmark = pytest.mark.ray


def assert_only_clactive_lines(done: subprocess.CompletedProcess) -> None:
    """The terminal of a run without --verbose: its start line, the round table (rows, and notes under
    them), the target line on stdout, its progress lines on stderr (plain lines: not a terminal);
    nothing from Ray (worker-start warnings, raylet or core-worker lines)."""
    for line in done.stderr.splitlines():
        assert re.match(r"round \d+/\d+ (scoring|update|target fit): [\d,]+(/[\d,]+)? (examples|steps), ", line), (
            f"not clactive's progress line: {line!r}"
        )
    for line in done.stdout.splitlines():
        assert (
            line.startswith(("clactive: ", "target "))
            or line.split()[:2] == ["round", "labelled"]
            or line[:5].strip().isdigit()
            or line.startswith("       ")
        ), f"not clactive's line: {line!r}"


def kill_at(point: str, args: list[str], run_dir: str, ray_address: str, timeout_s: float = 180) -> None:
    """Start the CLI, wait until the run reaches `point` ("<round>:<stage>"), SIGKILL it."""
    at_round, stage = point.split(":")
    marker, storage = marker_name(int(at_round), stage), Storage(run_dir)
    env = {**os.environ, "RAY_ADDRESS": ray_address, HOOK_ENV: f"{point}:pause"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not storage.is_file(marker):
            assert proc.poll() is None, f"the run ended ({proc.returncode}) before reaching {point}"
            assert time.monotonic() < deadline, f"the run did not reach {point} within {timeout_s} s"
            time.sleep(0.5)
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait()


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


# One two-round run is killed three times, at each kill point the README names, and resumed both
# ways: after round 0's labels are written but before its record (before its update), resumed by the
# same command; while round 1 scores the pool, resumed with --resume; inside round 1's update,
# resumed by the same command. Its run directory and its prepared pool are on a real S3 server, as on a
# cluster: every process of the run (driver, coordinator, scorers, Train workers) reads and writes there.
# Round 1's update is the run's first warm start: the redone one must start from round 0's weights,
# optimizer state and replay memory, so the run ends with the unbroken run's weights, bit for bit on
# CPU. (tests/unit/test_warm_start.py runs it for three rounds, where round 2's selection shows it too,
# and shows that losing any of the three changes the weights.)
def test_a_run_killed_inside_a_round_resumes_to_the_same_selection_and_weights(
    ray_cluster, tiny_data_dir, tmp_path, unbroken, submitted, s3
):
    run_dir, env = s3.uri(f"runs/{uuid.uuid4().hex[:8]}"), {"RAY_ADDRESS": ray_cluster}
    storage = Storage(run_dir)
    # the prepared pool in the bucket too: every process reads its rows from there
    args = two_round_args(tiny_data_dir, tmp_path, f"run_dir={run_dir}", f"data.cache_dir={s3.uri('cache')}")
    kill_at("0:label", args, run_dir, ray_cluster)
    assert storage.is_file("rounds/0000/labels.parquet")  # the round's files are there ...
    assert RunStore(run_dir).committed_rounds() == []  # ... and the partial round is invisible
    kill_at("1:scorer", args, run_dir, ray_cluster)
    assert RunStore(run_dir).committed_rounds() == [0] and storage.names("rounds") == ["0000"]
    before = selection(run_dir)
    kill_at("1:train", ["--resume", run_dir], run_dir, ray_cluster)
    assert RunStore(run_dir).committed_rounds() == [0] and selection(run_dir) == before  # no label lost or changed

    done = clactive(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(resuming)" in done.stdout
    assert_only_clactive_lines(done)
    after = selection(run_dir)
    assert after[:1] == before
    flat = [i for part in after for i in part]
    assert len(flat) == len(set(flat))  # no label acquired twice
    assert after == unbroken  # the same selection as an unbroken run
    resumed, unbroken_weights = final_weights(run_dir), final_weights(submitted[1])
    assert resumed.keys() == unbroken_weights.keys()
    assert all(torch.equal(resumed[k], unbroken_weights[k]) for k in resumed)
    assert storage.names("rounds") == ["0000", "0001"]
    stamp = storage.fs.get_file_info(storage.path("rounds.jsonl")).mtime
    time.sleep(1.1)  # S3 keeps modification times in whole seconds
    assert pipeline.cli.main(["run", *args]) == 0  # and once more (in-process): a finished run does nothing
    assert storage.fs.get_file_info(storage.path("rounds.jsonl")).mtime == stamp


def test_resuming_with_a_different_config_is_refused(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    RunStore.create(run_dir, load_config(None, tiny_overrides(tiny_data_dir, tmp_path)))
    done = clactive(*with_sets(tiny_overrides(tiny_data_dir, tmp_path) + ["update.steps=9"]))
    assert done.returncode == 2 and "holds a run with update.steps = 7, not 9" in done.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_a_scoring_actor_a_train_worker_and_the_coordinator_that_die_mid_round_are_restarted(
    ray_cluster, tiny_data_dir, tmp_path, unbroken, monkeypatch
):
    """One two-round run (in this process, on the session's Ray), three faults: each process dies once
    (os._exit) inside a round, and the process Ray brings up in its place takes SLOW_RESTART_S to
    start: what redoes the work must wait for it, however slow the machine, not retry into a restart."""
    faults = {
        "0:label": "the coordinator, labels acquired but not committed",
        "1:scorer": "a scoring actor, on its first batch",
        "1:train": "Ray Train worker rank 0, as the update starts",
    }
    monkeypatch.setenv(HOOK_ENV, ",".join(f"{p}:slow_crash" for p in faults))
    assert pipeline.cli.main(["run", *two_round_args(tiny_data_dir, tmp_path)]) == 0
    run_dir = tmp_path / "run"
    for point, process in faults.items():
        at_round, stage = point.split(":")
        assert (run_dir / marker_name(int(at_round), stage)).is_file(), f"{process} never crashed"
        assert (run_dir / (marker_name(int(at_round), stage) + "-slow")).is_file(), f"{process} came back at once"
    records = RunStore(run_dir).records()
    assert records[0].get("coordinator_restarted") is True and records[1].get("redone_passes") == 1
    assert selection(run_dir) == unbroken


def test_ctrl_c_mid_round_ends_the_run_at_once_in_one_line_and_commits_nothing_half_done(
    ray_cluster, tiny_data_dir, tmp_path
):
    """SIGINT (a terminal's Ctrl-C) while round 0's update runs: the run does not wait for the round
    to end, says in one line that the committed rounds are kept and how to continue, exits 130,
    leaves the round uncommitted and no actor of its own behind on the cluster. (The child gets
    SIGINT's default action, as a command started from a terminal has: one started from a
    background job of a script inherits it ignored.)"""
    run_dir = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, HOOK_ENV: "0:train:pause"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *two_round_args(tiny_data_dir, tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        while not (run_dir / marker_name(0, "train")).is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not reach round 0's update"
            time.sleep(0.5)
        job = ray_job_of(proc.pid)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        took_s = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert took_s < 20  # not the minute a graceful close of the busy coordinator would wait
    assert [line for line in stderr.splitlines() if line.startswith("clactive: ")] == [
        "clactive: interrupted: the rounds committed so far are kept; the same command continues after them "
        "(for a run: clactive run --resume RUN_DIR)"
    ]
    assert "Traceback" not in stderr
    assert RunStore(run_dir).committed_rounds() == []
    deadline = time.monotonic() + 30
    while alive := own_actors(job):
        assert time.monotonic() < deadline, f"the interrupted run's actors outlived it: {alive}"
        time.sleep(1)


def own_actors(job: str) -> list[str]:
    """The job's live actors, but Ray Data's cluster-wide ones (_StatsActor, ...), which it keeps
    detached for every job to share."""
    return [
        a.class_name
        for a in list_actors(filters=[("job_id", "=", job), ("state", "=", "ALIVE")])
        if not a.class_name.startswith("_")
    ]


def ray_job_of(driver_pid: int) -> str:
    """The id of the Ray job whose driver is the process `driver_pid`."""
    jobs = [j for j in list_jobs() if j.driver_info and int(j.driver_info.pid) == driver_pid]
    assert len(jobs) == 1, jobs
    return jobs[0].job_id


def final_weights(run_dir: str) -> dict:
    store = RunStore(run_dir)
    checkpoint = store.load_round_state(store.committed_rounds()[-1])["checkpoint"]
    return torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)["model"]
