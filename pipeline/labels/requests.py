"""The external oracle's label requests: what a round asks people to label, and the answers stored
for it, in files beside the rounds. No Ray. Checking answers is pipeline.labels.answers' business,
telling a person where a run stands pipeline.labels.status'.

With `oracle: external` a round pauses after selection: its request is written and the run
stops. People label the requested examples; `clactive label import` checks and stores their
answers; `clactive run --resume` continues the round. A request and its answers live beside the
rounds, not inside them:

    requests/NNNN/              the label request of round N
        to_label.parquet          one row per requested id, in selection order: id, image (the
                                  shape is in the schema metadata, as in the pool), and the
                                  selection model's hints predicted_label, predicted_prob, score
                                  (null in round 0, which has no model)
        to_label.csv              the same rows without pixels, and an empty `label` column to fill in
        request.json              written last: its presence makes the request exist. round,
                                  requested, num_classes, num_rounds, rng (the run's random state
                                  after selection), admitted (arrival shards), candidates,
                                  seconds, created (Unix time)
        answers/NNNN-<tag>.parquet  one file per import: id, label; its source in the metadata

Not in rounds/NNNN/: a round directory without record.json is the remains of a crash and is
deleted before the round is redone, and a request holding days of answers must never be. The
request stays after its round commits, as the record of what was asked and what was answered.

A request is open while its round is not committed. Answers are final once stored: an import
never changes one. Importing the same answer again is allowed (a labelling tool may export
everything so far each time) and counted as already stored.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.data.rows import image_array, images_from_arrow, pool_schema, shape_from_schema
from pipeline.errors import OracleError
from pipeline.ids import positions_of
from pipeline.loop.run_store import RunStore

REQUESTS = "requests"
TO_LABEL = "to_label"
REQUEST_FILE = "request.json"
SOURCE_KEY = b"clactive.answers_from"
HINTS = {"predicted_label": pa.int64(), "predicted_prob": pa.float64(), "score": pa.float64()}


def request_dir(round_index: int) -> str:
    return f"{REQUESTS}/{round_index:04d}"


@dataclass(frozen=True)
class Request:
    """One round's label request and every answer stored for it so far."""

    round: int
    pool_ids: np.ndarray  # requested ids, in selection order
    answers: dict[int, int]  # pool id -> label
    meta: dict  # request.json

    @property
    def requested(self) -> int:
        return len(self.pool_ids)

    @property
    def answered(self) -> int:
        return len(self.answers)

    @property
    def missing(self) -> int:
        return self.requested - self.answered

    def answered_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(pool_ids, labels) of the answered requests, in selection order."""
        ids = np.array([i for i in self.pool_ids.tolist() if i in self.answers], dtype=np.int64)
        return ids, np.array([self.answers[i] for i in ids.tolist()], dtype=np.int64)

    def missing_ids(self) -> np.ndarray:
        """The requested ids without an answer, in selection order."""
        return np.array([i for i in self.pool_ids.tolist() if i not in self.answers], dtype=np.int64)


class LabelRequests:
    """The requests/ area of a run directory."""

    def __init__(self, store: RunStore):
        self.store = store
        self.storage = store.storage

    def rounds(self) -> list[int]:
        """Rounds with a written request."""
        return [
            int(name)
            for name in self.storage.names(REQUESTS)
            if name.isdigit() and self.storage.is_file(f"{request_dir(int(name))}/{REQUEST_FILE}")
        ]

    def get(self, round_index: int) -> Request | None:
        base = request_dir(round_index)
        if not self.storage.is_file(f"{base}/{REQUEST_FILE}"):
            return None
        meta = json.loads(self.storage.read(f"{base}/{REQUEST_FILE}"))
        ids = self.storage.read_table(f"{base}/{TO_LABEL}.parquet", columns=["id"])
        answers: dict[int, int] = {}
        for name in self._answer_files(round_index):
            table = self.storage.read_table(f"{base}/answers/{name}")
            answers.update(zip(table.column("id").to_pylist(), table.column("label").to_pylist()))
        return Request(round_index, ids.column("id").to_numpy(), answers, meta)

    def open(self) -> Request | None:
        """The request of the latest round, while that round is not committed."""
        rounds = self.rounds()
        if not rounds or rounds[-1] in self.store.committed_rounds():
            return None
        return self.get(rounds[-1])

    def create(
        self,
        round_index: int,
        pool_ids: np.ndarray,
        images: np.ndarray,
        hints: dict[str, np.ndarray] | None,
        meta: dict,
    ) -> Request:
        """Write round `round_index`'s request: images (n, C, H, W) of `pool_ids`, in selection
        order; hints {name: (n,)} for every name in HINTS, or None (round 0)."""
        base = request_dir(round_index)
        if self.storage.is_file(f"{base}/{REQUEST_FILE}"):
            raise OracleError(
                f"round {round_index} already has a label request in {self.store.location}; it is never rewritten"
            )
        self.storage.delete_dir(base)  # what a crash while writing an earlier attempt left
        table = request_table(pool_ids, images, hints)
        self.storage.write_table(f"{base}/{TO_LABEL}.parquet", table)
        self.storage.write(f"{base}/{TO_LABEL}.csv", request_csv(table))
        meta = {"round": round_index, "requested": int(len(pool_ids)), **meta}
        self.storage.sync_dir(base)
        self.storage.write(f"{base}/{REQUEST_FILE}", (json.dumps(meta, indent=1) + "\n").encode())
        self.storage.sync_dir(base)
        return Request(round_index, np.asarray(pool_ids, dtype=np.int64), {}, meta)

    def images(self, round_index: int, pool_ids: np.ndarray) -> np.ndarray:
        """(n, C, H, W) images (pixels or token ids) of `pool_ids` (requested ids), in that order."""
        table = self.storage.read_table(f"{request_dir(round_index)}/{TO_LABEL}.parquet", columns=["id", "image"])
        shape = shape_from_schema(table.schema)
        return images_from_arrow(table.column("image"), shape)[positions_of(table.column("id").to_numpy(), pool_ids)]

    def add_answers(self, request: Request, pool_ids: np.ndarray, labels: np.ndarray, source: str) -> Request:
        """Store checked new answers as one more file, written whole."""
        table = pa.table({"id": pa.array(pool_ids, pa.int64()), "label": pa.array(labels, pa.int64())})
        table = table.replace_schema_metadata(
            {SOURCE_KEY: source.encode(), b"clactive.imported": str(time.time()).encode()}
        )
        number = len(self._answer_files(request.round)) + 1
        # the tag keeps two imports racing for one number from replacing each other's file
        self.storage.write_table(
            f"{request_dir(request.round)}/answers/{number:04d}-{uuid.uuid4().hex[:8]}.parquet", table
        )
        answers = {**request.answers, **dict(zip(pool_ids.tolist(), labels.tolist()))}
        return Request(request.round, request.pool_ids, answers, request.meta)

    def location_of(self, round_index: int, name: str) -> str:
        return self.store.location_of(f"{request_dir(round_index)}/{name}")

    def _answer_files(self, round_index: int) -> list[str]:
        return [
            name
            for name in self.storage.names(f"{request_dir(round_index)}/answers")
            if name.endswith(".parquet") and not name.startswith(".")
        ]


# --- the request's files ---------------------------------------------------------------------


def request_table(pool_ids: np.ndarray, images: np.ndarray, hints: dict[str, np.ndarray] | None) -> pa.Table:
    """to_label.parquet: id, image, then the hint columns (all null without hints)."""
    n = len(pool_ids)
    columns = {"id": pa.array(np.asarray(pool_ids, dtype=np.int64)), "image": image_array(images)}
    for name, kind in HINTS.items():
        columns[name] = (
            pa.nulls(n, kind) if hints is None else pa.array(np.asarray(hints[name]), kind, from_pandas=True)
        )
    table = pa.table(columns)
    return table.replace_schema_metadata(pool_schema(images.shape[1:]).metadata)


def request_csv(table: pa.Table) -> bytes:
    """to_label.csv: id, an empty label column to fill in, the hints; no pixels."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "label", *HINTS])
    hints = [table.column(name).to_pylist() for name in HINTS]
    for i, pool_id in enumerate(table.column("id").to_pylist()):
        label, prob, score = (column[i] for column in hints)
        writer.writerow(
            [
                pool_id,
                "",
                "" if label is None else label,
                "" if prob is None else f"{prob:.4f}",
                "" if score is None else f"{score:.6g}",
            ]
        )
    return out.getvalue().encode()
