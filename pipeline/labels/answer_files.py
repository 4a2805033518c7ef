"""Answers files people send back: CSV or Parquet with columns id and label, read into arrays.

Only the file's own form is checked here (columns, integers, empty labels); whether the answers
fit a request is pipeline.labels.answers' business. Every problem is a one-line OracleError naming the
file and the line or row.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import OracleError

FORMATS = (".csv", ".parquet")


def read_answers(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """(pool_ids, labels, where each answer is in the file, rows skipped for an empty label) of an
    answers file, CSV or Parquet with columns id and label (others are ignored)."""
    ext = os.path.splitext(name)[1].lower()
    if ext not in FORMATS:
        raise OracleError(
            f"{name}: unknown answers format '{ext or name}': give a .csv or .parquet file with columns id,label"
        )
    ids, labels, where, skipped = (_read_csv if ext == ".csv" else _read_parquet)(name, data)
    if not ids:
        hint = f" ({skipped} rows have an empty label: fill it in)" if skipped else ""
        raise OracleError(f"{name} holds no answers{hint}; write one line id,label per labelled example")
    return np.array(ids, dtype=np.int64), np.array(labels, dtype=np.int64), where, skipped


def _read_csv(name: str, data: bytes):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OracleError(
            f"{name} is not a UTF-8 text file: give a CSV with columns id,label or a .parquet file"
        ) from None
    rows = csv.reader(io.StringIO(text))
    try:
        header = [cell.strip() for cell in next(rows, [])]
        columns = _columns(name, header)
        ids, labels, where, skipped = [], [], [], 0
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cells = [cell.strip() for cell in row] + [""] * len(header)
            id_text, label_text = cells[columns["id"]], cells[columns["label"]]
            if not label_text:
                skipped += 1
                continue
            ids.append(_integer(id_text, f"{name} line {line}: id"))
            labels.append(_integer(label_text, f"{name} line {line}: label"))
            where.append(f"line {line}")
    except csv.Error as exc:
        raise OracleError(f"{name} is not a readable CSV file ({exc}): write lines id,label") from None
    return ids, labels, where, skipped


def _read_parquet(name: str, data: bytes):
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise OracleError(
            f"{name} is not a readable Parquet file ({str(exc).splitlines()[0]}): "
            "give a Parquet file with columns id,label, or a .csv"
        ) from None
    columns = _columns(name, table.column_names)
    for column in columns:
        kind = table.schema.field(column).type
        if not pa.types.is_integer(kind):
            raise OracleError(f"{name}: column {column} holds {kind}, not integers: labels are class indices")
    ids, labels = table.column("id").to_pylist(), table.column("label").to_pylist()
    if None in ids:
        raise OracleError(f"{name} row {ids.index(None)}: the id is empty; every row needs an id")
    rows = [i for i, label in enumerate(labels) if label is not None]
    return [ids[i] for i in rows], [labels[i] for i in rows], [f"row {i}" for i in rows], len(ids) - len(rows)


def _columns(name: str, header: list[str]) -> dict[str, int]:
    missing = [column for column in ("id", "label") if column not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "nothing"
        raise OracleError(
            f"{name} has no {' or '.join(missing)} column (found: {found}): "
            "the first line must name the columns, e.g. id,label"
        )
    return {column: header.index(column) for column in ("id", "label")}


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OracleError(f"{what} {text!r} is not an integer") from None
