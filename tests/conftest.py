import os

import pytest

from tests.helpers import write_fashion_like

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session: two cores do not hold two."""
    import ray
    # A stalled Ray Data pass fails after two minutes instead of hanging the suite.
    os.environ["RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S"] = "120"
    ray.init(num_cpus=2, logging_level="WARNING", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return write_fashion_like(tmp_path_factory.mktemp("fashion_like"))


@pytest.fixture
def work_dir(tmp_path):
    return tmp_path
