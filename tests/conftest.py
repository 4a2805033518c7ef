from tests.ray_head import ray_head, use_token_auth

use_token_auth()  # before any test module imports ray

import pytest  # noqa: E402

from tests.helpers import write_fashion_like  # noqa: E402


@pytest.fixture(scope="session")
def ray_head_node():
    """One real Ray head for the whole session (two cores do not hold two clusters).

    It advertises one *logical* GPU on this CPU-only machine, so every run exercises the
    path a GPU cluster takes: scoring actors request the GPU, and torch must stay on the CPU.
    """
    with ray_head(num_cpus=2, num_gpus=1) as head:
        yield head


@pytest.fixture(scope="session")
def ray_cluster(ray_head_node):
    """The session's driver connection to the head; yields the address other drivers may use."""
    import ray
    assert not ray.is_initialized(), "a test before the integration tests left a Ray running in this process"
    address, _ = ray_head_node
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    yield address
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return write_fashion_like(tmp_path_factory.mktemp("fashion_like"))


@pytest.fixture
def work_dir(tmp_path):
    return tmp_path
