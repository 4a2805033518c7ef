"""Which Ray a run uses (actors/cluster.py): never a stale one, and an unreachable address in seconds."""

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import ray

import pipeline.cli
from actors import cluster
from pipeline.errors import ClactiveError
from tests.helpers import tiny_overrides, write_fashion_like
from tests.ray_head import free_ports


@pytest.fixture
def ray_init_calls(monkeypatch):
    """ray.init replaced by a recorder, as if no Ray ran in this process."""
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


@pytest.mark.ray
def test_without_an_address_a_run_starts_its_own_ray_and_its_processes_find_it_not_a_stale_one(monkeypatch):
    """A real local Ray (unit tests run before the session's head starts). A dead head is recorded
    where Ray looks for "the cluster on this machine"; the driver must not join it, and Ray's own
    processes (Ray Train's placement-group cleaner asks this from a worker) must find this run's Ray."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp = Path(tempfile.mkdtemp(prefix="ct-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", str(temp))  # restored after the test; connect() points it further in
    stale = temp / "ray" / "ray_current_cluster"
    stale.parent.mkdir()
    stale.write_text(f"127.0.0.1:{free_ports(1)[0]}")
    assert not ray.is_initialized()
    try:
        cluster.connect()
        ours = ray.get_runtime_context().gcs_address

        @ray.remote(num_cpus=0)
        def cluster_seen_from_a_worker() -> str:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            return canonicalize_bootstrap_address_or_die(None)

        assert ray.get(cluster_seen_from_a_worker.remote(), timeout=120) == ours
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_address_from_the_environment_is_used_when_no_address_is_given(monkeypatch, ray_init_calls):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # ray job submit sets it; ray:// is not probed
    cluster.connect(verbose=True)
    assert ray_init_calls == [{"address": "ray://head:10001", "log_to_driver": True, "logging_level": 20}]


def test_address_auto_reads_the_cluster_file_and_fails_fast_when_that_head_is_gone(
    tmp_path, monkeypatch, ray_init_calls
):
    monkeypatch.setattr(cluster, "RAY_TEMP_DIR", str(tmp_path))
    with pytest.raises(ClactiveError, match="no Ray cluster was started on this machine"):
        cluster.connect("auto")
    port = free_ports(1)[0]
    (tmp_path / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    monkeypatch.setattr(cluster, "REACH_TIMEOUT_S", 1)
    with pytest.raises(ClactiveError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        cluster.connect("auto")
    with pytest.raises(ClactiveError, match="write host:port"):
        cluster.connect("head-without-port")
    assert ray_init_calls == []


def test_an_unreachable_address_is_one_line_exit_2_within_30_s_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """Through the CLI's entry point, in this process: the address is refused before any Ray starts.
    A user waits REACH_TIMEOUT_S plus one connect's timeout at most (the 30 s promised); the test
    shortens the retries to 1 s, as the other 9 s would be spent asleep."""
    assert cluster.REACH_TIMEOUT_S + cluster.CONNECT_TIMEOUT_S < 30
    monkeypatch.setattr(cluster, "REACH_TIMEOUT_S", 1)
    import ray._private.worker as ray_worker  # the run quiets Ray's console printer: put back afterwards

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)
    data_dir = write_fashion_like(tmp_path / "raw")
    address = f"127.0.0.1:{free_ports(1)[0]}"
    sets = [arg for item in tiny_overrides(data_dir, tmp_path) for arg in ("--set", item)]
    start = time.monotonic()
    assert pipeline.cli.main(["run", *sets, "--address", address]) == 2
    assert time.monotonic() - start < 1 + cluster.CONNECT_TIMEOUT_S
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"clactive: error: no Ray cluster answers at {address}")
    assert "--address" in err and not (tmp_path / "run").exists()
    assert not ray.is_initialized()
