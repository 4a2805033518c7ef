"""Amazon Review Polarity and Full (Zhang et al. 2015) in their CSV layout.

    amazon_review_polarity_csv/  train.csv  test.csv   labels 1..2
    amazon_review_full_csv/      train.csv  test.csv   labels 1..5

Each line is `"label","title","text"`: no header, every field quoted, quotes inside a field
doubled, line breaks inside a review written as a literal backslash-n. Labels 1..K are stored as
0..K-1. A review becomes data.max_tokens hashed word ids of its title then its text
(pipeline.data.tokens); the pool stores them as a 1 x 1 x max_tokens int32 "image", so scoring, replay
and the label store handle text exactly as they handle pixels.

Pool ids are the line's position in train.csv, from 0 (test.csv likewise).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.base import SOURCES, Source
from pipeline.data.tokens import BUCKETS, Tokenizer
from pipeline.errors import DataError

FILES = {"pool": "train.csv", "test": "test.csv"}
READ_ROWS = 10_000


class TokenSource(Source):
    """Texts stored as data.max_tokens hashed word ids (pipeline.data.tokens) in a 1 x 1 x max_tokens int32
    "image". The Amazon Reviews and text_csv share it, so the same text models read both."""

    feature_dtype = "int32"
    mean, std = 0.0, 1.0  # token ids are not normalised
    default_augment = "none"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 1, self.options.max_tokens)

    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.options.max_tokens, "buckets": BUCKETS}


class _AmazonReviews(TokenSource):
    def files(self) -> list[Path]:
        return [self.data_dir / name for name in FILES.values()]

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        path = self.data_dir / FILES[split]
        tokenize = Tokenizer(self.options.max_tokens)
        texts: list[str] = []
        labels: list[int] = []
        try:
            # surrogateescape keeps undecodable bytes as lone surrogates, so the row that holds
            # them can be named: a decoder error would only say which 8 KiB buffer failed
            with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
                reader = csv.reader(f)
                for row in reader:
                    labels.append(self._label(row, path, reader.line_num))
                    text = f"{row[1]} . {row[2]}"
                    if not text.isascii():
                        check_utf8(text, path, reader.line_num)
                    texts.append(text)
                    if len(texts) == READ_ROWS:
                        yield tokenize.batch(texts)[:, None, None, :], np.asarray(labels, dtype=np.int64)
                        texts, labels = [], []
        except csv.Error as exc:
            raise DataError(
                f"{path} line {reader.line_num}: {exc}; the file is not the quoted CSV of the Amazon Review datasets"
            ) from None
        if texts:
            yield tokenize.batch(texts)[:, None, None, :], np.asarray(labels, dtype=np.int64)

    def _label(self, row: list[str], path: Path, line: int) -> int:
        if len(row) != 3:
            raise DataError(
                f'{path} line {line} has {len(row)} fields, expected 3 ("label","title","text"); '
                "fix or remove that line"
            )
        k = self.num_classes
        try:
            label = int(row[0])
        except ValueError:
            label = None
        if label is None or not 1 <= label <= k:
            hint = "; Amazon Review Full has labels 1..5: use --dataset amazon_review_full" if k == 2 else ""
            raise DataError(f"{path} line {line}: label {row[0]!r} is not one of 1..{k}{hint}")
        return label - 1


def check_utf8(text: str, path: Path, line: int) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{path} line {line} is not UTF-8 text; re-copy the original CSV") from None


@SOURCES.register("amazon_review_polarity")
class AmazonReviewPolarity(_AmazonReviews):
    num_classes = 2


@SOURCES.register("amazon_review_full")
class AmazonReviewFull(_AmazonReviews):
    num_classes = 5
