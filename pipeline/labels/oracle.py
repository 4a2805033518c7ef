"""The external oracle: label requests that people answer, and the answers they send back. No Ray.

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
import os
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.config.run_config import RunConfig
from pipeline.config.schedule import round_count
from pipeline.data.base import image_array, images_from_arrow, pool_schema, read_rows, shape_from_schema
from pipeline.errors import OracleError
from pipeline.ids import positions_of
from pipeline.labels.answer_files import read_answers
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


@dataclass(frozen=True)
class ImportReport:
    request: Request  # after the import
    source: str
    stored: int  # new answers
    repeated: int  # answers already stored, with the same label
    skipped: int  # rows with an empty label

    def describe(self, location: str) -> str:
        r = self.request
        extra = [
            f"{n} {what}"
            for n, what in ((self.repeated, "already stored"), (self.skipped, "rows without a label"))
            if n
        ]
        head = f"round {r.round}: stored {self.stored} answers from {self.source}" + (
            f" ({', '.join(extra)})" if extra else ""
        )
        return f"{head}; {progress(r, location)}"


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


# --- answers: check, store ---------------------------------------------------------------


def check_answers(
    request: Request,
    pool_ids: np.ndarray,
    labels: np.ndarray,
    where: list[str],
    num_classes: int,
    name: str,
    csv_location: str,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The answers of one file that are new: (pool_ids, labels, how many were already stored).

    Refuses the whole file, naming the first bad answer, when an id was not requested, a label is
    not a class, an id is answered twice in the file, or it contradicts a stored answer."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = bad[0]
        raise OracleError(
            f"{name} {where[i]}: label {labels[i]} for id {pool_ids[i]} is outside 0..{num_classes - 1}: "
            "labels are class indices"
        )
    requested = set(request.pool_ids.tolist())
    stray = [i for i, pool_id in enumerate(pool_ids.tolist()) if pool_id not in requested]
    if stray:
        i = stray[0]
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise OracleError(
            f"{name} {where[i]}: id {pool_ids[i]}{more} was not requested in round {request.round}: "
            f"answer only the {request.requested} ids in {csv_location}"
        )
    first: dict[int, int] = {}
    for i, pool_id in enumerate(pool_ids.tolist()):
        if pool_id in first:
            raise OracleError(
                f"{name}: id {pool_id} is answered twice ({where[first[pool_id]]} and {where[i]}): keep one"
            )
        first[pool_id] = i
    new = np.ones(len(pool_ids), dtype=bool)
    for i, (pool_id, label) in enumerate(zip(pool_ids.tolist(), labels.tolist())):
        stored = request.answers.get(pool_id)
        if stored is not None and stored != label:
            raise OracleError(
                f"{name} {where[i]}: id {pool_id} is already answered {stored}, this file says {label}: "
                "stored answers are final; drop the line"
            )
        new[i] = stored is None
    return pool_ids[new], labels[new], int((~new).sum())


def open_request(store: RunStore) -> Request:
    """The run's open request, or a one-line OracleError saying why there is none and what to do."""
    requests = LabelRequests(store)
    request = requests.open()
    if request is not None:
        return request
    config = store.saved_config()
    location = store.location
    if config.oracle != "external":
        raise OracleError(
            f"{location} runs with oracle: {config.oracle}: its labels come from the data's label column, "
            "not from imports; start a run with --set oracle=external"
        )
    done = len(store.committed_rounds())
    if done == round_count(config.schedule):
        raise OracleError(
            f"the run in {location} has finished all {done} rounds: every round's labels are final "
            "and no request is open"
        )
    rounds = requests.rounds()
    if rounds and rounds[-1] == done - 1:
        raise OracleError(
            f"round {rounds[-1]} of {location} is already committed: its labels are final; "
            f"`clactive run --resume {location}` asks for the labels of round {done}"
        )
    raise OracleError(
        f"{location} has no open label request: `clactive run --resume {location}` writes the one of round {done}"
    )


def import_answers(store: RunStore, path: str) -> ImportReport:
    """Check an answers file against the open request and store its new answers; on any error
    nothing is stored."""
    request = open_request(store)
    if not os.path.isfile(path):
        raise OracleError(f"answers file {path} does not exist: pass the CSV or Parquet file holding id,label")
    with open(path, "rb") as handle:
        data = handle.read()
    pool_ids, labels, where, skipped = read_answers(path, data)
    return _store(store, request, pool_ids, labels, where, path, skipped)


def simulate_answers(store: RunStore, pool_files: list[str], image_shape, count: int | None = None) -> ImportReport:
    """Answer the open request from the pool's label column (the ground truth): its first `count`
    missing ids in selection order, or all of them. For tests and demos of the external path."""
    request = open_request(store)
    pool_ids = request.missing_ids()[:count]
    labels = read_rows(pool_files, pool_ids, image_shape)[1] if len(pool_ids) else np.empty(0, np.int64)
    where = [f"row {i}" for i in range(len(pool_ids))]
    return _store(store, request, pool_ids, labels, where, "the pool's label column (simulated)", 0)


def _store(
    store: RunStore,
    request: Request,
    pool_ids: np.ndarray,
    labels: np.ndarray,
    where: list[str],
    source: str,
    skipped: int,
) -> ImportReport:
    requests = LabelRequests(store)
    new_ids, new_labels, repeated = check_answers(
        request,
        pool_ids,
        labels,
        where,
        request.meta["num_classes"],
        source,
        requests.location_of(request.round, f"{TO_LABEL}.csv"),
    )
    if len(new_ids):
        request = requests.add_answers(request, new_ids, new_labels, source)
    return ImportReport(request, source, int(len(new_ids)), repeated, skipped)


# --- what a person reads -----------------------------------------------------------------------


def progress(request: Request, location: str) -> str:
    """How far the request is answered, and the next command."""
    if request.missing == 0:
        return f"all {request.requested} answered: {next_step(request, location)}"
    return (
        f"{request.answered} of {request.requested} answered, {request.missing} missing: {next_step(request, location)}"
    )


def next_step(request: Request, location: str) -> str:
    if request.missing == 0:
        return f"continue with `clactive run --resume {location}`"
    step = f"import answers with `clactive label import {location} FILE`"
    if request.answered:
        step += f", or continue with the answered ids: `clactive run --resume {location} --accept-partial`"
    return step


def waiting_message(store: RunStore, request: Request) -> str:
    """What `clactive run` prints when a round pauses for labels."""
    location = store.location
    requests = LabelRequests(store)
    return (
        f"round {request.round} waits for {request.missing} labels: {requests.location_of(request.round, TO_LABEL + '.csv')} "
        f"(ids and the model's hints; images in {TO_LABEL}.parquet)\n"
        f"answer with `clactive label import {location} FILE` (CSV or Parquet with columns id,label), "
        f"then `clactive run --resume {location}`"
    )


def check_continuable(store: RunStore, accept_partial: bool) -> None:
    """Before Ray starts: an open request the run cannot continue yet is a one-line OracleError."""
    request = LabelRequests(store).open()
    if request is None or request.missing == 0:
        return
    location = store.location
    if request.answered == 0:
        raise OracleError(
            f"round {request.round} waits for the {request.requested} labels it asked for and none is "
            f"answered yet: label {LabelRequests(store).location_of(request.round, TO_LABEL + '.csv')} "
            f"and import it with `clactive label import {location} FILE`"
        )
    if not accept_partial:
        raise OracleError(
            f"round {request.round} waits for {request.missing} of its {request.requested} labels: "
            f"import them with `clactive label import {location} FILE`, or continue with the "
            f"{request.answered} answered: `clactive run --resume {location} --accept-partial`"
        )


def status_lines(store: RunStore) -> list[str]:
    """`clactive status`: rounds done, labels acquired, the open request and what it still needs."""
    config: RunConfig = store.saved_config()
    location = store.location
    records = store.records()
    total = round_count(config.schedule)
    lines = [
        f"run {location}: {config.strategy} / {config.acquisition}, oracle {config.oracle}, seed {config.seed}",
        f"rounds done: {len(records)} of {total}; labels acquired: {records[-1]['labelled'] if records else 0}",
    ]
    for record in records:
        if "requested" in record and record["answered"] < record["requested"]:
            lines.append(
                f"  round {record['round']} continued with {record['answered']} of its "
                f"{record['requested']} requested labels"
            )
    requests = LabelRequests(store)
    request = requests.open()
    if request is not None:
        lines.append(
            f"open request: round {request.round} asks for {request.requested} labels: "
            f"{request.answered} answered, {request.missing} missing"
        )
        lines.append(
            f"  to label: {requests.location_of(request.round, TO_LABEL + '.csv')} (images in {TO_LABEL}.parquet)"
        )
        lines.append(f"  next: {next_step(request, location)}")
    elif len(records) < total:
        lines.append(
            f"no open request; next: `clactive run --resume {location}`"
            + (" asks for the labels of round %d" % len(records) if config.oracle == "external" else "")
        )
    else:
        target = store.read_json(f"targets/{total - 1:04d}.json")
        lines.append(
            "finished"
            + (
                f": target {target['target']} on {target['labelled']} labels, test accuracy {target['target_acc']:.4f}"
                if target
                else ""
            )
        )
    return lines
