"""Your own texts: text_csv files with a header row, and a string column of a Parquet table."""

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config.run_config import DataConfig
from pipeline.data import SOURCES, get_source
from pipeline.data.tokens import Tokenizer
from pipeline.errors import DataError
from tests.unit.test_sources import all_rows, expect_one_line, prepare, write_pool

GENRES = ("thriller", "poetry", "cooking", "history", "travel", "science", "sport", "music")  # 8 classes
WORDS = {genre: [f"{genre}{k}" for k in range(3)] for genre in GENRES}  # a genre's own words


def text_rows(n, labels, seed=0):
    """(text, label) rows cycling through `labels`; a text holds words of its class and, to keep the
    csv writer honest, commas, quotes and a line break."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        own = WORDS[GENRES[i % len(labels)]]
        rows.append((f'A "{rng.choice(own)}" book, {rng.choice(own)}\nand {i}', label))
    return rows


def write_text_csv(raw, pool=24, test=16, labels=GENRES, header=("id", "text", "label"), seed=0):
    """train.csv and test.csv with a header row; an extra `id` column the source ignores. Returns raw."""
    raw.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.csv", pool), ("test.csv", test)):
        with open(raw / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows((f"k{i}", text, label) for i, (text, label) in enumerate(text_rows(n, labels, seed)))
        seed += 1
    return raw


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_text_csv_is_a_registered_source():
    assert "text_csv" in SOURCES.names()


def test_string_labels_become_classes_in_sorted_order_and_the_mapping_is_saved(tmp_path):
    raw = write_text_csv(tmp_path / "raw")
    prepared = prepare("text_csv", raw, tmp_path, max_tokens=12)
    assert prepared.sizes == {"pool": 24, "test": 16} and prepared.num_classes == 8
    assert prepared.image_shape == (1, 1, 12) and prepared.feature_dtype == "int32" and prepared.holds == "tokens"
    assert prepared.class_names == tuple(sorted(GENRES))
    manifest = json.loads((Path(prepared.root) / "manifest.json").read_text())
    assert manifest["class_names"] == sorted(GENRES)
    tokenize = Tokenizer(12)
    for split, name in (("pool", "train.csv"), ("test", "test.csv")):
        written = read_csv(raw / name)
        ids, tokens, labels = all_rows(prepared, split)
        assert ids.tolist() == list(range(len(written)))  # the row's position below the header
        assert labels.tolist() == [sorted(GENRES).index(row["label"]) for row in written]
        assert tokens.dtype == np.int32
        for i in (0, 5, len(written) - 1):
            assert tokens[i, 0, 0].tolist() == tokenize(written[i]["text"]).tolist()


def test_integer_labels_are_classes_in_numeric_order(tmp_path):
    raw = write_text_csv(tmp_path / "raw", pool=12, test=6, labels=("10", "9", "2", "-1"))
    prepared = prepare("text_csv", raw, tmp_path)
    assert prepared.num_classes == 4 and prepared.class_names == ("-1", "2", "9", "10")
    ids, _, labels = all_rows(prepared, "pool")
    assert labels.tolist() == [3, 2, 1, 0] * 3


def test_integer_labels_from_zero_keep_their_values(tmp_path):
    raw = write_text_csv(tmp_path / "raw", pool=9, test=3, labels=("0", "1", "2"))
    prepared = prepare("text_csv", raw, tmp_path)
    assert prepared.class_names == ("0", "1", "2")
    assert all_rows(prepared, "pool")[2].tolist() == [0, 1, 2] * 3


def test_other_column_names_and_a_byte_order_mark_are_accepted(tmp_path):
    raw = write_text_csv(tmp_path / "raw", pool=8, test=4, labels=("pos", "neg"), header=("key", "review", "stars"))
    for name in ("train.csv", "test.csv"):
        (raw / name).write_bytes(b"\xef\xbb\xbf" + (raw / name).read_bytes())  # as spreadsheets save UTF-8
    prepared = prepare("text_csv", raw, tmp_path, text_column="review", label_column="stars")
    assert prepared.class_names == ("neg", "pos") and all_rows(prepared, "pool")[2].tolist() == [1, 0] * 4


def test_a_parquet_string_column_is_tokenised_like_the_csv_texts(tmp_path):
    texts = [text for text, _ in text_rows(10, GENRES)]
    table = pa.table(
        {
            "body": pa.array(texts),
            "image": pa.array([b"unused"] * 10),
            "y": pa.array(np.arange(10) % 3),
            "key": pa.array(np.arange(100, 110)[::-1]),
        }
    )
    write_pool(tmp_path / "raw", table, test=table.slice(0, 4).drop_columns(["key"]))
    prepared = prepare(
        "parquet", tmp_path / "raw", tmp_path, text_column="body", label_column="y", id_column="key", max_tokens=9
    )
    assert prepared.sizes == {"pool": 10, "test": 4} and prepared.num_classes == 3
    assert prepared.image_shape == (1, 1, 9) and prepared.holds == "tokens" and prepared.class_names is None
    assert (prepared.mean, prepared.std) == (0.0, 1.0)
    ids, tokens, labels = all_rows(prepared, "pool")
    assert ids.tolist() == list(range(100, 110)) and labels.tolist() == [(109 - i) % 3 for i in ids]
    assert tokens[0, 0, 0].tolist() == Tokenizer(9)(texts[9]).tolist()  # id 100 is the last row
    assert all_rows(prepared, "test")[0].tolist() == [0, 1, 2, 3]


def test_a_parquet_table_of_images_keeps_the_cache_key_it_had_before_texts(tmp_path):
    source = get_source("parquet", tmp_path, DataConfig(dataset="parquet", data_dir=str(tmp_path)))
    assert set(source.params()) == {
        "feature_column",
        "label_column",
        "id_column",
        "image_shape",
        "image_size",
        "skip_corrupt",
    }
    assert source.feature_dtype == "uint8"


# --- errors -------------------------------------------------------------------------------


def test_a_missing_text_csv_file_is_named(tmp_path):
    raw = write_text_csv(tmp_path / "raw", pool=8, test=4)
    (raw / "test.csv").unlink()
    expect_one_line(
        DataError,
        r"text_csv: missing data file .*test.csv; pass the directory that holds train.csv, "
        r"test.csv with --data-dir",
        lambda: prepare("text_csv", raw, tmp_path),
    )


def one_line_rows(raw, pool=("a,pos", "b,neg", "c,pos"), test=("d,neg", "e,pos"), header="text,label"):
    raw.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", pool), ("test.csv", test)):
        (raw / name).write_text("\n".join(([header] if header is not None else []) + list(rows)) + "\n")
    return raw


@pytest.mark.parametrize(
    "files, options, message",
    [
        (
            dict(header=None),
            {},
            r"train.csv line 1 \(the header\) has no column 'text' \(data.text_column\), only "
            r"'a', 'pos'; add a header row naming the columns, or set data.text_column",
        ),
        (
            dict(header="body,label"),
            {},
            r"train.csv line 1 \(the header\) has no column 'text' .* only 'body', 'label'",
        ),
        (
            dict(header="text,class"),
            {},
            r"train.csv line 1 \(the header\) has no column 'label' \(data.label_column\), "
            r"only 'text', 'class'; .* or set data.label_column",
        ),
        (dict(), {"label_column": "stars"}, r"has no column 'stars' \(data.label_column\)"),
        (dict(header=""), {}, r"train.csv line 1 is blank; it must be a header naming the columns, such as text,label"),
        (
            dict(pool=("a,pos", "b,neg,extra", "c,pos")),
            {},
            r"train.csv line 3 has 3 fields, expected 2 as in the header \(text,label\); quote fields that hold commas",
        ),
        (dict(pool=("a,pos", '"two\nlines",neg', "c,pos,x")), {}, r"train.csv line 5 has 3 fields"),  # line 3 spans 2
        (dict(pool=("a,pos", " ,neg")), {}, r"train.csv line 3: the text \(column 'text'\) is empty; write the text"),
        (dict(test=("d,neg", "e,")), {}, r"test.csv line 3: the label \(column 'label'\) is empty; label that row"),
        (
            dict(test=("d,neg", "e,neutral")),
            {},
            r"test.csv line 3: label 'neutral' is not one of the 2 classes of "
            r"train.csv \(neg, pos\); remove that line, or add examples of it",
        ),
        (
            dict(pool=("a,1", "b,2"), test=("c,1", "d,x")),
            {},
            r"test.csv line 3: label 'x' is not one of the 2 classes "
            r"of train.csv \(1, 2\)",
        ),
        (
            dict(pool=("a,pos", "b,pos")),
            {},
            r"train.csv: every row has label 'pos' in column 'label'; a classifier "
            r"needs at least 2 classes",
        ),
        (dict(pool=("a,1", "b,01")), {}, r"train.csv: every row has label '0?1' in column 'label'"),  # the same integer
        (dict(pool=()), {}, r"train.csv has a header but no rows; add labelled examples below it"),
    ],
)
def test_bad_text_csv_files_are_named_by_file_and_line_and_nothing_is_written(tmp_path, files, options, message):
    raw = one_line_rows(tmp_path / "raw", **files)
    expect_one_line(DataError, message, lambda: prepare("text_csv", raw, tmp_path, **options))
    assert not list(tmp_path.glob("cache/**/*.parquet"))


def test_an_empty_text_csv_is_named(tmp_path):
    raw = one_line_rows(tmp_path / "raw")
    (raw / "test.csv").write_text("")
    expect_one_line(
        DataError,
        r"test.csv is empty; its line 1 must be a header naming the columns, such as "
        r"text,label",
        lambda: prepare("text_csv", raw, tmp_path),
    )


def test_a_text_csv_that_is_not_utf8_is_named_by_line(tmp_path):
    raw = one_line_rows(tmp_path / "raw")
    (raw / "train.csv").write_bytes((raw / "train.csv").read_bytes() + b"caf\xe9 au lait,neg\n")
    expect_one_line(DataError, r"train.csv line 5 is not UTF-8 text", lambda: prepare("text_csv", raw, tmp_path))


@pytest.mark.parametrize(
    "table, message",
    [
        (
            pa.table({"body": pa.array([1, 2]), "y": pa.array([0, 1])}),
            r"parquet: column 'body' of .*train.parquet is int64, not text; write the texts as strings, or set "
            r"data.text_column to a column of strings",
        ),
        (
            pa.table({"text": pa.array(["a", "b"]), "y": pa.array([0, 1])}),
            r"parquet: .*train.parquet has no column 'body' \(data.text_column\); its columns are text, y",
        ),
        (
            pa.table({"body": pa.array(["a", "  ", "c"]), "y": pa.array([0, 1, 0])}),
            r"parquet: column 'body' of .*train.parquet has no text in row 1 \(from 0\); "
            r"write the text or drop that row",
        ),
        (
            pa.table({"body": pa.array(["a", None]), "y": pa.array([0, 1]), "key": pa.array([7, 8])}),
            r"has no text in the row with key 8",
        ),
    ],
)
def test_bad_parquet_text_columns_are_named(tmp_path, table, message):
    write_pool(tmp_path / "raw", table)
    options = {"id_column": "key"} if "key" in table.column_names else {}
    expect_one_line(
        DataError,
        message,
        lambda: prepare("parquet", tmp_path / "raw", tmp_path, text_column="body", label_column="y", **options),
    )
    assert not list(tmp_path.glob("cache/**/*.parquet"))
