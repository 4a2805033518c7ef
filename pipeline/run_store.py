"""The run directory: the single source of truth of a run. Every file is written atomically.

    config.yaml                  the resolved config
    labels/round_NNNN.parquet    labels acquired in round N (id, image, label); append-only
    state/round_NNNN.npz         the strategy's state after round N (its replay memory)
    checkpoints/<role>_round_NNNN.pt   the selection model after round N
    rounds.jsonl                 one record per completed round
    final.json                   the target model's accuracy on the final labels
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import RunConfig, save_config
from pipeline.data.base import arrow_table, images_from_arrow, pool_schema
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


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)

    @classmethod
    def create(cls, run_dir: str | Path, config: RunConfig) -> "RunStore":
        store = cls(run_dir)
        if store.root.exists() and any(store.root.iterdir()):
            raise RunDirError(f"run directory {store.root} already holds files; pass a new --run-dir or remove it")
        write_atomic(store.root / "config.yaml", save_config(config).encode())
        return store

    # --- labels ------------------------------------------------------------------------------
    def append_labels(self, round_index: int, pool_ids: np.ndarray, labels: np.ndarray, images: np.ndarray) -> None:
        path = self.root / "labels" / f"round_{round_index:04d}.parquet"
        if path.exists():
            raise RunDirError(f"labels of round {round_index} already exist in {path.parent}; the label store is "
                              "append-only: start a new --run-dir")
        table = arrow_table(pool_ids, images, labels, pool_schema(images.shape[1:]))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())

    def load_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pool_ids, labels, images) of every round, in acquisition order."""
        paths = sorted((self.root / "labels").glob("round_*.parquet"))
        if not paths:
            raise RunDirError(f"{self.root} holds no labels yet")
        table = pa.concat_tables(pq.read_table(p) for p in paths)
        shape = tuple(int(v) for v in table.schema.metadata[b"clactive.image_shape"].decode().split(","))
        return (table.column("id").to_numpy(), table.column("label").to_numpy(),
                images_from_arrow(table.column("image"), shape))

    # --- state, checkpoints, records -----------------------------------------------------------
    def save_strategy_state(self, round_index: int, state: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **state)
        write_atomic(self.root / "state" / f"round_{round_index:04d}.npz", buffer.getvalue())

    def save_checkpoint(self, round_index: int, role: str, weights: bytes) -> Path:
        path = self.root / "checkpoints" / f"{role}_round_{round_index:04d}.pt"
        write_atomic(path, weights)
        return path

    def append_record(self, record: dict) -> None:
        lines = [json.dumps(r) for r in self.records()] + [json.dumps(record)]
        write_atomic(self.root / "rounds.jsonl", ("\n".join(lines) + "\n").encode())

    def records(self) -> list[dict]:
        path = self.root / "rounds.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_json(self, name: str, obj: dict) -> None:
        write_atomic(self.root / name, (json.dumps(obj, indent=1) + "\n").encode())
