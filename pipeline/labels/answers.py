"""Answers to the open label request (pipeline.labels.requests): checked against what it asked, then
stored; from an answers file (`clactive label import`) or from the pool's label column (`clactive
label simulate`). No Ray.

An answers file's own form (columns, integers, empty labels) is read in pipeline.labels.answer_files;
here its answers meet the request: only requested ids, labels that are classes, each id once, and
never against an answer already stored. A file with one bad answer is refused whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pipeline.config.schedule import round_count
from pipeline.data.rows import read_rows
from pipeline.errors import OracleError
from pipeline.labels.answer_files import read_answers
from pipeline.labels.requests import TO_LABEL, LabelRequests, Request
from pipeline.labels.status import progress
from pipeline.loop.run_store import RunStore


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
