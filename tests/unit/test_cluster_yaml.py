"""cluster.yaml through the launcher's own preparation and validation, offline."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from actors.cluster import IDLE_WORKER_ENV, IDLE_WORKER_MS
from actors.resources import process_requests, unplaceable
from pipeline.config.run_config import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_FILES = ["cluster.yaml", "cluster-gcp.yaml"]


def launcher_checks(config: dict) -> dict:
    """What `ray up` does to a config before it contacts the cloud."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_cluster_file_passes_the_launchers_preparation_and_validation(name):
    prepared = launcher_checks(load(name))
    types = prepared["available_node_types"]
    head = prepared["head_node_type"]
    assert types[head]["resources"]["GPU"] == 0
    gpu_types = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert len(gpu_types) >= 2 and head not in gpu_types
    assert all(t["min_workers"] == 0 for t in gpu_types.values())
    assert max(t["resources"]["GPU"] for t in gpu_types.values()) > 1  # a multi-GPU type
    assert sum(t["max_workers"] for t in gpu_types.values()) >= prepared["max_workers"] > 0
    assert any("pip install" in c and "clactive" in c for c in prepared["setup_commands"])
    # every node keeps idle task workers as a local run's Ray does (actors.cluster)
    starts = [
        c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in prepared[key] if "ray start" in c
    ]
    assert len(starts) == 2 and all(f"{IDLE_WORKER_ENV}={IDLE_WORKER_MS} ray start" in c for c in starts)


@pytest.mark.parametrize(
    "break_it, error",
    [
        (lambda c: c.update(max_workers="ten"), jsonschema.ValidationError),
        (lambda c: c.update(worker_count=3), jsonschema.ValidationError),  # not a launcher key
        (lambda c: c["available_node_types"]["gpu_1x"].pop("node_config"), jsonschema.ValidationError),
        (lambda c: c.update(head_node_type="gpu_8x"), ValueError),
        (lambda c: c["available_node_types"]["gpu_1x"].update(min_workers=20), ValueError),  # > max_workers
    ],
)
def test_a_broken_copy_is_rejected(break_it, error):
    broken = load("cluster.yaml")
    break_it(broken)
    with pytest.raises(error):
        launcher_checks(broken)


def node_shapes(name: str) -> list[dict]:
    return [t["resources"] for t in load(name)["available_node_types"].values()]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_the_pipelines_requests_fit_the_worker_types(name):
    config = load_config(REPO / "configs" / "fashion_mnist_cluster.yaml")
    requests = process_requests(config, with_gpus=True)
    assert requests["scoring actor"]["GPU"] > 0 and requests["learner worker"]["GPU"] > 0
    assert unplaceable(requests, node_shapes(name)) == []
    target_training = load_config(
        REPO / "configs" / "fashion_mnist_cluster.yaml",
        ["learner.workers=4", "learner.use_gpu=true", "learner.gpus_per_worker=1"],
    )
    assert unplaceable(process_requests(target_training, with_gpus=True), node_shapes(name)) == []


def test_requests_no_node_can_hold_are_named():
    config = load_config(REPO / "configs" / "fashion_mnist_cluster.yaml", ["scoring.gpus_per_actor=8"])
    problems = unplaceable(process_requests(config, with_gpus=True), node_shapes("cluster.yaml"))
    assert problems == ["one scoring actor asks for 1 CPU, 8 GPU but no node has or can add that much"]


def test_without_gpus_auto_falls_back_to_cpu():
    requests = process_requests(load_config(REPO / "configs" / "fashion_mnist.yaml"), with_gpus=False)
    assert requests["scoring actor"]["GPU"] == 0 and requests["learner worker"]["GPU"] == 0
