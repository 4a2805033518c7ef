"""The run directory: the single source of truth of a run, on a local disk or a shared URI.

    config.yaml                 the resolved config; a run directory holds one config for good
    classes.json                what each class index stands for, when the data named its classes
    rounds/NNNN/                round N:
        labels.parquet            ids and labels acquired in round N (append-only); the pixels stay in
                                  the pool, which is immutable and addressed by id
        state.npz                 the strategy's state after round N (its replay memory)
        checkpoint.pt             the selection model and its optimizer after round N
        rng.json                  the run's random generator after round N
        stop_set.npy              the selection model's predictions on the stop set (the validation
                                  images, or the test images where the data has no validation split)
        record.json               the round record, written last: its presence commits the round
    rounds.jsonl                a readable view of every record, rewritten after each commit
    targets/NNNN.json           the target trained from scratch on the labels of rounds 0..N: its accuracy
    requests/NNNN/              oracle: external: round N's label request and its answers
                                (pipeline.labels.requests); never removed with an uncommitted round

A round is committed by one atomic single-file write (record.json), which local disks and
object stores both provide; a round directory without it is the remains of a crash: it is
invisible to readers and removed before the round is redone.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from pipeline.config.run_config import RunConfig, config_from_dict, save_config
from pipeline.errors import RunDirError
from pipeline.storage import Storage, join

ROUND_FILES = ("labels.parquet", "state.npz", "checkpoint.pt", "rng.json", "record.json")
COMMIT_FILE = "record.json"


class RunStore:
    def __init__(self, run_dir: str | os.PathLike):
        self.storage = Storage(run_dir)
        self.location = str(run_dir)

    @classmethod
    def check_new(cls, run_dir: str | os.PathLike) -> RunStore:
        """Refuse a location that cannot hold a new run, before anything is written."""
        store = cls(run_dir)
        if store.storage.is_file(""):
            raise RunDirError(f"run directory {run_dir} is a file, not a directory; pass a new --run-dir")
        if store.storage.names():
            raise RunDirError(f"run directory {run_dir} already holds files; pass a new --run-dir or remove it")
        return store

    @classmethod
    def create(
        cls, run_dir: str | os.PathLike, config: RunConfig, class_names: tuple[str, ...] | None = None
    ) -> RunStore:
        """A new run directory. `class_names`: what each class index stood for in the user's data
        (text_csv's labels), kept as classes.json beside the config so the labels stay readable."""
        store = cls.check_new(run_dir)
        if class_names is not None:
            store.write_json("classes.json", {"class_names": list(class_names)})
        store.storage.write("config.yaml", save_config(config).encode())
        return store

    @classmethod
    def open(cls, run_dir: str | os.PathLike, config: RunConfig | None = None) -> RunStore:
        """An existing run, to resume; refuses one whose saved config differs from `config`."""
        store = cls(run_dir)
        saved = store.saved_config()
        if config is not None and saved != config:
            found = _first_difference(saved.to_dict(), config.to_dict())
            key, was, now = found or ("config", saved.to_dict(), config.to_dict())
            raise RunDirError(
                f"run directory {run_dir} holds a run with {key} = {was!r}, not {now!r}; resume it "
                "with its own config (clactive run --resume DIR) or pass a new --run-dir"
            )
        store.check_rounds()
        return store

    def location_of(self, name: str) -> str:
        """An absolute path or URI of `name` inside the run directory, for other writers (Ray Train)."""
        return self.storage.path(name) if self.storage.local else join(self.location, name)

    def holds_run(self) -> bool:
        return self.storage.is_file("config.yaml")

    def saved_config(self) -> RunConfig:
        if not self.holds_run():
            raise RunDirError(f"{self.location} holds no clactive run (no config.yaml); check the path")
        return config_from_dict(yaml.safe_load(self.storage.read("config.yaml")))

    def check_rounds(self) -> None:
        """Every committed round holds all its files: refuse to resume a damaged run."""
        for r in self.committed_rounds():
            present = set(self.storage.names(_round_dir(r)))
            missing = [name for name in ROUND_FILES if name not in present]
            if missing:
                raise RunDirError(
                    f"round {r} in {self.location} is missing {missing[0]}: the run directory was "
                    "damaged after it was written; restore it from a copy or start a new --run-dir"
                )

    # --- rounds ---------------------------------------------------------------------------------
    def committed_rounds(self) -> list[int]:
        return [
            int(name)
            for name in self.storage.names("rounds")
            if name.isdigit() and self.storage.is_file(f"{_round_dir(int(name))}/{COMMIT_FILE}")
        ]

    def discard_uncommitted(self) -> list[str]:
        """Remove rounds a crash left half-built; returns their names."""
        committed = {f"{r:04d}" for r in self.committed_rounds()}
        stale = [name for name in self.storage.names("rounds") if name not in committed]
        for name in stale:
            self.storage.delete_dir(f"rounds/{name}")
        return stale

    def begin_round(self, round_index: int) -> RoundWriter:
        if round_index in self.committed_rounds():
            raise RunDirError(
                f"round {round_index} is already committed in {self.location}; the label store is "
                "append-only: resume the run instead of repeating a round"
            )
        return self._writer(round_index)

    def _writer(self, round_index: int) -> RoundWriter:
        return RoundWriter(self, round_index)

    def load_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(pool_ids, labels) of every committed round, in acquisition order. (Runs written before the
        label store dropped its copy of the pixels also hold an image column; it is not read.)"""
        rounds = self.committed_rounds()
        if not rounds:
            raise RunDirError(f"{self.location} holds no committed round yet")
        table = pa.concat_tables(
            self.storage.read_table(f"{_round_dir(r)}/labels.parquet", columns=["id", "label"]) for r in rounds
        )
        return table.column("id").to_numpy(), table.column("label").to_numpy()

    def load_round_state(self, round_index: int) -> dict:
        """What resuming after `round_index` needs: strategy state, checkpoint, rng state, record."""
        base = _round_dir(round_index)
        with np.load(io.BytesIO(self.storage.read(f"{base}/state.npz"))) as state:
            strategy_state = {k: state[k] for k in state.files}
        return {
            "strategy": strategy_state,
            "checkpoint": self.storage.read(f"{base}/checkpoint.pt"),
            "rng": json.loads(self.storage.read(f"{base}/rng.json")),
            "record": json.loads(self.storage.read(f"{base}/{COMMIT_FILE}")),
        }

    def load_stop_set(self, round_index: int) -> np.ndarray | None:
        """Round `round_index`'s predictions on the stop set; None for runs written before they were kept."""
        name = f"{_round_dir(round_index)}/stop_set.npy"
        return np.load(io.BytesIO(self.storage.read(name))) if self.storage.is_file(name) else None

    def records(self) -> list[dict]:
        return [json.loads(self.storage.read(f"{_round_dir(r)}/{COMMIT_FILE}")) for r in self.committed_rounds()]

    def read_json(self, name: str) -> dict | None:
        return json.loads(self.storage.read(name)) if self.storage.is_file(name) else None

    def write_json(self, name: str, obj: dict) -> None:
        self.storage.write(name, (json.dumps(obj, indent=1) + "\n").encode())

    def _refresh_view(self) -> None:
        self.storage.write("rounds.jsonl", "".join(json.dumps(r) + "\n" for r in self.records()).encode())


def _round_dir(round_index: int) -> str:
    return f"rounds/{round_index:04d}"


class RoundWriter:
    """Fills one round's directory; `commit` makes it visible by writing its record last."""

    def __init__(self, store: RunStore, round_index: int):
        self.store = store
        self.dir = _round_dir(round_index)
        store.storage.delete_dir(self.dir)  # what an interrupted attempt at this round left

    def labels(self, pool_ids: np.ndarray, labels: np.ndarray) -> None:
        table = pa.table(
            {"id": pa.array(np.asarray(pool_ids, np.int64)), "label": pa.array(np.asarray(labels, np.int64))}
        )
        self.store.storage.write_table(f"{self.dir}/labels.parquet", table)

    def state(self, strategy_state: dict[str, np.ndarray], rng_state: Mapping[str, Any], checkpoint: bytes) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **strategy_state)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        self._write("state.npz", buffer.getvalue())
        self._write("rng.json", json.dumps(rng_state).encode())
        self._write("checkpoint.pt", checkpoint)

    def stop_set(self, predictions: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, predictions)
        self._write("stop_set.npy", buffer.getvalue())

    def commit(self, record: dict) -> None:
        self.store.storage.sync_dir(self.dir)  # the round's files are durable before the record says so
        self._write(COMMIT_FILE, json.dumps(record).encode())
        self.store.storage.sync_dir(self.dir)
        self.store._refresh_view()

    def _write(self, name: str, data: bytes) -> None:
        self.store.storage.write(f"{self.dir}/{name}", data)


def _first_difference(saved: dict, given: dict, prefix: str = "") -> tuple[str, object, object] | None:
    for key in saved:
        a, b = saved[key], given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}", a, b
    return None
