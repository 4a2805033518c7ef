from tests.ray_head import ray_head, ray_worker_node, use_token_auth

use_token_auth()  # before any test module imports ray

import time  # noqa: E402

import pytest  # noqa: E402

from tests.helpers import write_fashion_like  # noqa: E402

NODE_START_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def ray_head_node():
    """One real Ray cluster of two nodes for the whole session (two cores do not hold two clusters):
    a head and a worker node of one CPU each, so every integration test runs across two nodes, with
    resources checked and placed per node, objects moving between raylets, and read tasks that
    find room only beside the processes Ray put on each node.

    The head advertises one *logical* GPU on this CPU-only machine, so every run exercises the
    path a GPU cluster takes: scoring actors request the GPU, and torch must stay on the CPU.
    Yields the head's (GCS address, dashboard URL).
    """
    with ray_head(num_cpus=1, num_gpus=1) as head, ray_worker_node(head[0], num_cpus=1):
        yield head


@pytest.fixture(scope="session")
def ray_cluster(ray_head_node):
    """The session's driver connection to the head, once both nodes are up; yields the address
    other drivers may use."""
    import ray

    assert not ray.is_initialized(), "a test before the integration tests left a Ray running in this process"
    address, _ = ray_head_node
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while sum(node["Alive"] for node in ray.nodes()) < 2:
        assert time.monotonic() < deadline, f"the worker node did not join within {NODE_START_TIMEOUT_S} s"
        time.sleep(0.5)
    yield address
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return write_fashion_like(tmp_path_factory.mktemp("fashion_like"))


@pytest.fixture
def work_dir(tmp_path):
    return tmp_path
