"""The run directory: the single source of truth of a run.

    config.yaml                 the resolved config; a run directory holds one config for good
    rounds/NNNN/                round N, committed in one atomic step (a directory rename):
        labels.parquet            ids, images and labels acquired in round N (append-only)
        state.npz                 the strategy's state after round N (its replay memory)
        checkpoint.pt             the selection model and its optimizer after round N
        rng.json                  the run's random generator after round N
        record.json               the round record
    rounds.jsonl                a readable view of every record, rewritten after each commit
    final.json                  the target model's accuracy on the final labels

A round is built in `rounds/.NNNN.tmp/` and renamed into place only when complete, so a crash
at any point leaves the previous rounds intact and the partial one invisible.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipeline.config import RunConfig, config_from_dict, save_config
from pipeline.data.base import SHAPE_KEY, arrow_table, images_from_arrow, pool_schema
from pipeline.errors import RunDirError


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, flush it to disk, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)
        self.rounds_dir = self.root / "rounds"

    @classmethod
    def create(cls, run_dir: str | Path, config: RunConfig) -> "RunStore":
        store = cls(run_dir)
        if store.root.exists() and any(store.root.iterdir()):
            raise RunDirError(f"run directory {store.root} already holds files; pass a new --run-dir or remove it")
        write_atomic(store.root / "config.yaml", save_config(config).encode())
        return store

    @classmethod
    def open(cls, run_dir: str | Path, config: RunConfig | None = None) -> "RunStore":
        """An existing run, to resume; refuses one whose saved config differs from `config`."""
        store = cls(run_dir)
        saved = store.saved_config()
        if config is not None and saved != config:
            key, was, now = _first_difference(saved.to_dict(), config.to_dict())
            raise RunDirError(f"run directory {store.root} holds a run with {key} = {was!r}, not {now!r}; resume it "
                              "with its own config (clactive run --resume DIR) or pass a new --run-dir")
        return store

    def holds_run(self) -> bool:
        return (self.root / "config.yaml").is_file()

    def saved_config(self) -> RunConfig:
        path = self.root / "config.yaml"
        if not path.is_file():
            raise RunDirError(f"{self.root} holds no clactive run (no config.yaml); check the path")
        return config_from_dict(yaml.safe_load(path.read_text()))

    # --- rounds ---------------------------------------------------------------------------------
    def committed_rounds(self) -> list[int]:
        if not self.rounds_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.rounds_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def discard_uncommitted(self) -> list[str]:
        """Remove rounds a crash left half-built; returns their names."""
        if not self.rounds_dir.is_dir():
            return []
        stale = [p for p in self.rounds_dir.iterdir() if p.name.startswith(".")]
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return [p.name for p in stale]

    def begin_round(self, round_index: int) -> "RoundWriter":
        final = self.rounds_dir / f"{round_index:04d}"
        if final.exists():
            raise RunDirError(f"round {round_index} is already committed in {final}; the label store is "
                              "append-only: resume the run instead of repeating a round")
        return RoundWriter(self, round_index)

    def load_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pool_ids, labels, images) of every committed round, in acquisition order."""
        paths = [self._round_path(r) / "labels.parquet" for r in self.committed_rounds()]
        if not paths:
            raise RunDirError(f"{self.root} holds no committed round yet")
        table = pa.concat_tables(pq.read_table(p) for p in paths)
        shape = tuple(int(v) for v in table.schema.metadata[SHAPE_KEY].decode().split(","))
        return (table.column("id").to_numpy(), table.column("label").to_numpy(),
                images_from_arrow(table.column("image"), shape))

    def load_round_state(self, round_index: int) -> dict:
        """What resuming after `round_index` needs: strategy state, checkpoint, rng state, record."""
        path = self._round_path(round_index)
        with np.load(path / "state.npz") as state:
            strategy_state = {k: state[k] for k in state.files}
        return {"strategy": strategy_state, "checkpoint": (path / "checkpoint.pt").read_bytes(),
                "rng": json.loads((path / "rng.json").read_text()),
                "record": json.loads((path / "record.json").read_text())}

    def records(self) -> list[dict]:
        return [json.loads((self._round_path(r) / "record.json").read_text()) for r in self.committed_rounds()]

    def write_json(self, name: str, obj: dict) -> None:
        write_atomic(self.root / name, (json.dumps(obj, indent=1) + "\n").encode())

    def _round_path(self, round_index: int) -> Path:
        return self.rounds_dir / f"{round_index:04d}"

    def _refresh_view(self) -> None:
        write_atomic(self.root / "rounds.jsonl", "".join(json.dumps(r) + "\n" for r in self.records()).encode())


class RoundWriter:
    """Builds one round in a hidden directory; `commit` makes it visible in one rename."""

    def __init__(self, store: RunStore, round_index: int):
        self.store = store
        self.final = store.rounds_dir / f"{round_index:04d}"
        self.tmp = store.rounds_dir / f".{round_index:04d}.tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def labels(self, pool_ids: np.ndarray, labels: np.ndarray, images: np.ndarray) -> None:
        table = arrow_table(pool_ids, images, labels, pool_schema(images.shape[1:]))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self._write("labels.parquet", sink.getvalue().to_pybytes())

    def state(self, strategy_state: dict[str, np.ndarray], rng_state: dict, checkpoint: bytes) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **strategy_state)
        self._write("state.npz", buffer.getvalue())
        self._write("rng.json", json.dumps(rng_state).encode())
        self._write("checkpoint.pt", checkpoint)

    def commit(self, record: dict) -> None:
        self._write("record.json", json.dumps(record).encode())
        _fsync_dir(self.tmp)
        os.rename(self.tmp, self.final)  # the commit: atomic, and refuses to replace a committed round
        _fsync_dir(self.store.rounds_dir)
        self.store._refresh_view()

    def _write(self, name: str, data: bytes) -> None:
        with open(self.tmp / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def _first_difference(saved: dict, given: dict, prefix: str = "") -> tuple[str, object, object]:
    for key in saved:
        a, b = saved[key], given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}", a, b
    return None
