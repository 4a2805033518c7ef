"""The cluster path on a real local head: `ray job submit`, GPU requests, fail-fast refusals."""

import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import ray
from ray.util.state import list_actors

from pipeline.errors import ConfigError
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_overrides
from tests.integration.conftest import submit
from tests.integration.test_cli import with_sets
from tests.integration.test_rounds import run_tiny

pytestmark = pytest.mark.ray

SECONDS = {
    "score",
    "score_compute",
    "select",
    "label",
    "update",
    "train",
    "eval",
    "read_rows",
    "learner_overhead",
    "round",
}
SCORING_PASS = {"score_first_batch", "score_starved"}  # the rounds that score


def test_a_submitted_job_runs_the_command_prints_a_row_per_round_and_asks_for_the_logical_gpu(
    ray_head_node, ray_cluster, submitted
):
    """`clactive run` as a process (the job's driver) from start to end: what it prints, what it leaves
    in its run directory, and what it asked Ray for. The head has a logical GPU and no CUDA."""
    assert ray.cluster_resources().get("GPU") == 1  # logical: this machine has no GPU
    done, run_uri = submitted
    assert "succeeded" in done.stdout
    lines = done.stdout.splitlines()
    assert sum(line.split()[:2] == ["round", "labelled"] for line in lines) == 1
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    assert [(row[0], row[1], row[2]) for row in rows] == [("0", "40", "40"), ("1", "70", "30")]

    store = RunStore(run_uri)
    ids, labels = store.load_labels()
    assert len(ids) == 70 and len(set(ids.tolist())) == 70  # no id labelled twice, so each was unlabelled when chosen
    assert set(ids.tolist()) <= set(range(400)) and set(labels) <= set(range(10))
    records = store.records()
    assert [r["labelled"] for r in records] == [40, 70] and [r["acquired"] for r in records] == [40, 30]
    for record in records:
        assert SECONDS <= set(record["seconds"]) and all(v >= 0 for v in record["seconds"].values())
        assert 0.0 <= record["selection_acc"] <= 1.0 and record["selection_model"] == "proxy"
    assert SCORING_PASS.isdisjoint(records[0]["seconds"]) and SCORING_PASS <= set(records[1]["seconds"])
    assert [r["warm_start"] for r in records] == [False, True]
    assert [r["candidates"] for r in records] == [400, 200]  # round 1 scored its random subset only
    assert "selection_score_mean" not in records[0] and 0 < records[1]["selection_score_mean"] <= 0.9
    assert records[1]["steps"] == 7  # update.steps, counted by the worker
    assert records[1]["train_examples"] == 60  # 30 new + 30 replayed
    # each process's peak memory, from the process itself (the scorers' only once they have scored)
    assert records[0]["peak_rss_mib"]["scorers"] is None
    assert all(records[1]["peak_rss_mib"][p] > 50 for p in ("coordinator", "learner", "scorers"))
    assert sorted(p.name for p in Path(urlparse(run_uri).path).glob("rounds/*/checkpoint.pt")) == ["checkpoint.pt"] * 2

    resources = records[0]["resources"]
    assert resources["scoring actor"]["GPU"] == 0.5 and resources["learner worker"]["GPU"] == 0.5
    assert resources["learner_device"] == "cpu"
    _, dashboard = ray_head_node
    job_actors = [a for a in list_actors(detail=True, limit=10_000) if a.job_id == job_id_of(done.stdout, dashboard)]
    scorers = [a for a in job_actors if a.class_name == "Scorer"]
    assert scorers and all(gpu_request(a) == 0.5 for a in scorers)
    workers = [a for a in job_actors if a.class_name == "RayTrainWorker"]
    assert workers and all(gpu_request(a) == 0.5 for a in workers)


def job_id_of(submit_output: str, dashboard_url: str) -> str:
    """The Ray job id (hex) of a `ray job submit` run, from the submission id its output names."""
    from ray.job_submission import JobSubmissionClient

    submission = next(word.strip("'") for word in submit_output.split() if word.strip("'").startswith("raysubmit_"))
    return JobSubmissionClient(dashboard_url).get_job_info(submission).job_id


def test_a_job_naming_a_missing_data_path_fails_fast_with_one_line(ray_head_node, ray_cluster, tmp_path):
    _, dashboard = ray_head_node
    start = time.monotonic()
    done = submit(dashboard, *with_sets(tiny_overrides(tmp_path / "nowhere", tmp_path)), timeout=120)
    assert done.returncode != 0 and time.monotonic() - start < 90
    output = done.stdout + done.stderr
    # the job's log, and Ray's "job failed" status that quotes the log's tail: the same one line
    errors = {line[line.index("clactive: error:") :] for line in output.splitlines() if "clactive: error:" in line}
    assert len(errors) == 1 and "Traceback" not in output
    error = errors.pop()
    assert f"missing data file {tmp_path / 'nowhere'}" in error and "--data-dir" in error
    assert not (tmp_path / "run").exists()


def gpu_request(actor) -> float:
    """GPUs an actor asked for; placement-group members show them as GPU_group_<id>."""
    return max(
        (v for k, v in actor.required_resources.items() if k == "GPU" or k.startswith("GPU_group_")), default=0.0
    )


def test_gpus_no_node_can_provide_are_refused_before_any_round(ray_cluster, tiny_data_dir, work_dir):
    with pytest.raises(ConfigError, match="one scoring actor asks for 0.5 CPU, 4 GPU but no node has or can add"):
        run_tiny(tiny_data_dir, work_dir, "scoring.gpus_per_actor=4")
    assert RunStore(work_dir / "run").records() == []


def test_gpu_reservations_beyond_a_fixed_cluster_are_refused(ray_cluster, tiny_data_dir, work_dir):
    match = (
        r"the learner \(2 x 0.25 CPU, 0.5 GPU\) and the scorers \(1 x 0.5 CPU, 0.5 GPU\) do not all fit on the "
        r"cluster's nodes \(1 CPU/1 GPU, 1 CPU/0 GPU\)"
    )
    with pytest.raises(ConfigError, match=match):
        run_tiny(tiny_data_dir, work_dir, "learner.workers=2", "learner.cpus_per_worker=0.25")
    assert RunStore(work_dir / "run").records() == []
