"""A worker node lost mid-round, on the session's real multi-node cluster: a third node, the only one
with the custom resource the run's scoring actor and Train worker ask for, is killed (its raylet and
every process on it, SIGKILL) once while its scorer scores round 1 and once while its Train worker
runs round 1's update; each time a node of the same type joins in its place, as an autoscaler or a
spot-instance group would bring one. The run must end with the selection of an unbroken run. Then
the node is lost for good during an update: the run must stop with one line."""

import os
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
import ray

from actors.faults import HOOK_ENV, marker_name
from pipeline.loop.run_store import RunStore
from tests.integration.conftest import selection, two_round_args
from tests.integration.test_cli import REPO
from tests.ray_head import kill_node, ray_worker_node

pytestmark = pytest.mark.ray

NODE_TYPE = "lost_node_type"  # a custom resource only the node that is lost (and its replacements) has
# Pinned to that node type, off the head's logical GPU (the unbroken run asked for it, and computed on the
# CPU as this one does: its selection stays the reference).
PINNED = [
    f"scoring.resources={{{NODE_TYPE}: 0.5}}",
    f"learner.resources={{{NODE_TYPE}: 0.5}}",
    "scoring.gpus_per_actor=0",
    "learner.use_gpu=false",
]
STAGE_TIMEOUT_S = 240  # the run's start, or Ray noticing a lost node and the work redone on its replacement


class NodesOfTheType:
    """The nodes with NODE_TYPE on the session's cluster: at most one alive at a time, started on demand."""

    def __init__(self, address: str, stack: ExitStack):
        self.address, self.stack = address, stack
        self.current: tuple[subprocess.Popen, str] | None = None  # (its `ray start`, its node id)

    def alive(self) -> None:
        """A node of the type is in the cluster: the one there is, or a new one, once Ray lists it."""
        if self.current is not None:
            return
        before = typed_nodes()
        node = self.stack.enter_context(ray_worker_node(self.address, num_cpus=1, resources=f'{{"{NODE_TYPE}": 1}}'))
        wait_for(lambda: typed_nodes() - before, None, "a new node of the type in the cluster")
        self.current = node, next(iter(typed_nodes() - before))

    def kill(self) -> str:
        """Kill the node of the type (its raylet and every process on it, SIGKILL); returns its id."""
        node, node_id = self.current
        kill_node(node)
        self.current = None
        return node_id


@pytest.fixture(scope="module")
def lost_type(ray_cluster):
    before = alive_nodes()
    with ExitStack() as stack:
        yield NodesOfTheType(ray_cluster, stack)
    wait_for(lambda: alive_nodes() == before, None, "the nodes of the type gone")  # as the next tests expect


def test_a_node_lost_during_a_scoring_pass_and_during_an_update_costs_no_label(
    ray_cluster, lost_type, tiny_data_dir, tmp_path, unbroken
):
    run_dir = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, HOOK_ENV: "1:scorer:hold,1:train:hold"}
    lost_type.alive()
    lost = []
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", *two_round_args(tiny_data_dir, tmp_path, *PINNED)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for stage in ("scorer", "train"):  # the held process runs on the pinned node: it goes down with it
                wait_for((run_dir / marker_name(1, stage)).is_file, run, f"round 1's {stage} hold")
                lost.append(lost_type.kill())
                lost_type.alive()  # a replacement joins
            assert run.wait(timeout=2 * STAGE_TIMEOUT_S) == 0, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
    wait_for(lambda: not alive_nodes() & set(lost), None, "Ray to declare the killed nodes dead")

    records = RunStore(run_dir).records()
    assert records[1].get("redone_passes") == 1  # the lost scorer's pass, redone from its start on the new node
    after = selection(run_dir)
    flat = [i for part in after for i in part]
    assert len(flat) == len(set(flat))  # no label acquired twice
    assert after == unbroken  # none lost or changed: the unbroken run's selection


def test_an_update_whose_node_is_lost_for_good_ends_in_one_line_naming_the_wait_and_resume(
    ray_cluster, lost_type, tiny_data_dir, tmp_path
):
    """No node comes back: Ray Train would try to place the worker group again forever; the run waits
    learner.placement_timeout_s, then stops with one line, the round uncommitted."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, HOOK_ENV: "0:train:hold"}
    lost_type.alive()  # the last test's replacement, or a new one
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            *two_round_args(tiny_data_dir, tmp_path, *PINNED, "learner.placement_timeout_s=10"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (run_dir / marker_name(0, "train")).is_file(), run, "round 0's train hold")
        lost_type.kill()
        stdout, stderr = run.communicate(timeout=STAGE_TIMEOUT_S)
    finally:
        if run.poll() is None:
            run.kill()

    assert run.returncode == 2, stdout[-2000:] + stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("clactive: error:")]
    assert len(errors) == 1 and "Traceback" not in stdout + stderr, stderr[-3000:]
    assert "within 10 s (learner.placement_timeout_s)" in errors[0]
    assert f"clactive run --resume {run_dir}" in errors[0]
    assert RunStore(run_dir).committed_rounds() == []  # the round that lost its update is not half-committed


def alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def typed_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and NODE_TYPE in n["Resources"]}


def wait_for(condition, run: subprocess.Popen | None, what: str) -> None:
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while not condition():
        assert run is None or run.poll() is None, f"the run ended ({run.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {STAGE_TIMEOUT_S} s"
        time.sleep(0.5)
