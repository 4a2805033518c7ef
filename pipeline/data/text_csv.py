"""Your own labelled texts: two CSV files with a header row.

    DATA_DIR/train.csv   the pool
    DATA_DIR/test.csv    the test split

    text,label
    "Arrived broken, sent it back.",negative
    Does what it says.,positive

data.text_column    the column of texts (default "text")
data.label_column   the column of labels (default "label")
Other columns are ignored. The files are UTF-8 (a byte-order mark is allowed), comma-separated
as spreadsheets and Python's csv module write them: a field that holds a comma, a quote or a
line break is quoted, with quotes inside it doubled. Blank lines are skipped.

Classes are the distinct labels of train.csv, in sorted order: numeric order when every label
is an integer (so 0..K-1 stay as they are and 1..5 become 0..4), string order otherwise. Any
K >= 2 works; a test label that train.csv lacks is an error, not a new class. Class i was
written as `PreparedData.class_names[i]`, which the prepared directory's manifest.json keeps.

Texts are tokenised as the Amazon Review sources tokenise theirs (pipeline.data.amazon,
pipeline.data.tokens), so the same text models read them. Pool ids are the row's position below the
header of train.csv, from 0 (test.csv likewise). The files are read twice: once to learn the
classes and check every row before anything is written, once to tokenise.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.amazon import READ_ROWS, TokenSource, check_utf8
from pipeline.data.base import SOURCES
from pipeline.data.tokens import Tokenizer
from pipeline.errors import DataError

FILES = {"pool": "train.csv", "test": "test.csv"}
SHOWN_CLASSES = 10  # an unseen-label error lists at most this many classes
_INTEGER = re.compile(r"[+-]?[0-9]+")


@SOURCES.register("text_csv")
class TextCsv(TokenSource):
    def __init__(self, data_dir: Path, options=None):
        super().__init__(data_dir, options)
        self._classes: dict[int | str, int] | None = None  # a label's key (see _key) -> its class
        self._integers = False

    @property
    def text_column(self) -> str:
        return "text" if self.options.text_column is None else self.options.text_column

    def params(self) -> dict[str, Any]:
        return {**super().params(), "text_column": self.text_column, "label_column": self.options.label_column}

    def files(self) -> list[Path]:
        return [self.data_dir / name for name in FILES.values()]

    def check(self) -> None:
        """The files exist and their headers name both columns; the rows are checked when the
        classes are learnt, before any shard is written."""
        super().check()
        for path in self.files():
            with _open(path) as f:
                self._columns(next(csv.reader(f), None), path)

    # --- the classes ---------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self._learn_classes())

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(key) for key in self._learn_classes())

    def _key(self, label: str) -> int | str:
        # integers compare as numbers: "10" sorts after "9", and "01" is the class "1"; a
        # non-integer test label among integer classes stays a string, which no class matches
        return int(label) if self._integers and _INTEGER.fullmatch(label) else label

    def _learn_classes(self) -> dict[int | str, int]:
        if self._classes is not None:
            return self._classes
        train = self.data_dir / FILES["pool"]
        labels = {label for _, _, label in self._rows(train)}
        if not labels:
            raise DataError(f"{train} has a header but no rows; add labelled examples below it")
        self._integers = all(_INTEGER.fullmatch(label) for label in labels)
        keys = sorted({self._key(label) for label in labels})
        if len(keys) < 2:
            raise DataError(
                f"{train}: every row has label {labels.pop()!r} in column '{self.options.label_column}'; "
                "a classifier needs at least 2 classes: add examples of another class, or check "
                "data.label_column"
            )
        classes = {key: i for i, key in enumerate(keys)}
        test = self.data_dir / FILES["test"]
        for line, _, label in self._rows(test):
            if self._key(label) not in classes:
                shown = ", ".join(str(key) for key in keys[:SHOWN_CLASSES])
                shown += ", ..." if len(keys) > SHOWN_CLASSES else ""
                raise DataError(
                    f"{test} line {line}: label {label!r} is not one of the {len(keys)} classes of "
                    f"{train.name} ({shown}); remove that line, or add examples of it to {train.name}"
                )
        self._classes = classes
        return classes

    # --- reading -------------------------------------------------------------------------------

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        classes = self._learn_classes()
        tokenize = Tokenizer(self.options.max_tokens)
        texts: list[str] = []
        labels: list[int] = []
        for _, text, label in self._rows(self.data_dir / FILES[split]):
            texts.append(text)
            labels.append(classes[self._key(label)])
            if len(texts) == READ_ROWS:
                yield tokenize.batch(texts)[:, None, None, :], np.asarray(labels, dtype=np.int64)
                texts, labels = [], []
        if texts:
            yield tokenize.batch(texts)[:, None, None, :], np.asarray(labels, dtype=np.int64)

    def _rows(self, path: Path) -> Iterator[tuple[int, str, str]]:
        """(line, text, label) of every row below the header, each checked; `line` is where the row
        starts, from 1, and the label is stripped of surrounding spaces."""
        with _open(path) as f:
            reader = csv.reader(f)
            try:
                first = next(reader, None)
                text_at, label_at = self._columns(first, path)  # refuses a file without a header
                header = first or []
                end = reader.line_num
                for row in reader:
                    line, end = end + 1, reader.line_num  # a quoted field may span several lines
                    if not row:
                        continue
                    if len(row) != len(header):
                        raise DataError(
                            f"{path} line {line} has {len(row)} fields, expected {len(header)} as in the "
                            f"header ({','.join(header)}); quote fields that hold commas, or fix or "
                            "remove that line"
                        )
                    text, label = row[text_at], row[label_at].strip()
                    if not text.strip():
                        raise DataError(
                            f"{path} line {line}: the text (column '{self.text_column}') is empty; "
                            "write the text or remove that line"
                        )
                    if not label:
                        raise DataError(
                            f"{path} line {line}: the label (column '{self.options.label_column}') "
                            "is empty; label that row or remove it"
                        )
                    for field in (text, label):
                        if not field.isascii():
                            check_utf8(field, path, line)
                    yield line, text, label
            except csv.Error as exc:
                raise DataError(
                    f"{path} line {reader.line_num}: {exc}; look for a quote left open, and quote "
                    "fields that hold quotes, commas or line breaks"
                ) from None

    def _columns(self, header: list[str] | None, path: Path) -> tuple[int, int]:
        """Positions of the text and label columns in `header`, the first row of `path`."""
        example = f"such as {self.text_column},{self.options.label_column}"
        if header is None:
            raise DataError(f"{path} is empty; its line 1 must be a header naming the columns, {example}")
        if not header:
            raise DataError(f"{path} line 1 is blank; it must be a header naming the columns, {example}")
        names = [name.strip() for name in header]
        for role, column in (("text", self.text_column), ("label", self.options.label_column)):
            if column not in names:
                found = ", ".join(repr(name) for name in names)
                raise DataError(
                    f"{path} line 1 (the header) has no column '{column}' (data.{role}_column), only "
                    f"{found}; add a header row naming the columns, or set data.{role}_column"
                )
        return names.index(self.text_column), names.index(self.options.label_column)


def _open(path: Path):
    # utf-8-sig drops the byte-order mark spreadsheets write; surrogateescape keeps undecodable
    # bytes as lone surrogates, so the row that holds them can be named (check_utf8)
    return open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")
