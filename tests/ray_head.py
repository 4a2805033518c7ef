"""A real local Ray cluster on loopback, on free ports: a head (`ray start --head --block`) and
worker nodes (`ray start --address --block`), each a process group of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from actors.cluster import IDLE_WORKER_ENV, IDLE_WORKER_MS

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def use_token_auth() -> None:
    """Token authentication on, as on a real cluster, with a fresh token for this process tree.

    Call before the first `import ray`: Ray reads these once. Every client started from here
    (ray.init, `ray job submit`, the clactive CLI) inherits the token.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def node_env() -> dict[str, str]:
    """A node's environment: this process's (its auth token included), plus what tests need."""
    return {
        **os.environ,
        "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S": "120",
        # one machine, no node to be preempted: Ray Train's watcher is a process per run
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
        # the head checks every node's raylet each second, not every 3 s: a killed node is declared dead
        # after five refused checks, ~5 s instead of ~14 s. A raylet that is alive but slow still has
        # each check's own 10 s timeout to answer in.
        "RAY_health_check_period_ms": "1000",
        # as cluster.yaml's nodes: idle task workers kept, so scoring passes reuse their read workers
        IDLE_WORKER_ENV: IDLE_WORKER_MS,
        # a job's `python` is this environment's, as on a cluster node
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@contextmanager
def ray_head(num_cpus: int, num_gpus: int = 0, start_timeout_s: float = 90):
    """Yields (gcs_address, dashboard_url); the head and its processes stop on exit, whatever happened."""
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics, node_manager, object_manager = free_ports(9)
    command = [
        RAY,
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        f"--num-cpus={num_cpus}",
        f"--num-gpus={num_gpus}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}",
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={object_manager}",
        "--disable-usage-stats",
    ]
    head = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=node_env()
    )
    address, url = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_dashboard(head, url, start_timeout_s)
        yield address, url
    finally:
        _stop(head)


@contextmanager
def ray_worker_node(address: str, num_cpus: int, resources: str = "{}"):
    """A worker node joined to the head at `address`, with its own CPUs; stops on exit.

    It gets a temp dir of its own, as a node on another machine has: sharing the head's, its
    runtime-env agent unpacked and garbage-collected a job's working_dir in the same directory the
    head's job driver was running from, and the driver lost its files mid-run.
    """
    object_manager, node_manager, metrics, agent_http, agent_grpc, runtime_env = free_ports(6)
    temp_dir = tempfile.mkdtemp(prefix="ray-node-")  # short: Ray's socket paths live under it
    command = [
        RAY,
        "start",
        f"--address={address}",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--resources={resources}",
        f"--object-manager-port={object_manager}",
        f"--node-manager-port={node_manager}",
        f"--metrics-export-port={metrics}",
        f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        "--disable-usage-stats",
    ]
    node = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=node_env()
    )
    try:
        yield node
    finally:
        _stop(node)
        shutil.rmtree(temp_dir, ignore_errors=True)


def kill_node(node: subprocess.Popen) -> None:
    """SIGKILL a node's raylet and every other process of its group at once, as when its machine is lost."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # gone already
    node.wait()


def _stop(node: subprocess.Popen) -> None:
    # --block makes `ray start` the parent of the node's processes: ending its process group ends them all.
    try:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=2)  # a clean stop takes 30 s+ on two cores; nothing here needs one
    except (ProcessLookupError, subprocess.TimeoutExpired):
        kill_node(node)


def _wait_for_dashboard(head: subprocess.Popen, url: str, timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}: {head.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (with token authentication on, 401): it is up
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the Ray head's dashboard at {url} did not answer within {timeout_s} s")
