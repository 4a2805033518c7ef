"""Text: hashed-word tokenisation, the Amazon Review CSV layout, and the fastText and CNN models."""

import csv

import numpy as np
import pytest
import torch

from pipeline.config.run_config import load_config
from pipeline.data.tokens import BUCKETS, Tokenizer
from pipeline.errors import ConfigError, DataError
from pipeline.loop.preflight import plan_run
from pipeline.update.models import create_model
from pipeline.update.training import train_steps
from tests.helpers import amazon_rows, write_amazon_like
from tests.unit.test_sources import all_rows, expect_one_line, prepare
from tests.unit.test_training import accuracy


def test_tokenizer_hashes_lowercased_words_into_stable_buckets_and_pads():
    tokenize = Tokenizer(max_tokens=6)
    row = tokenize("Don't BUY it!\\nBroke.")
    assert row.dtype == np.int32 and row.shape == (6,)
    words = ["don't", "buy", "it", "broke"]
    assert row[:4].tolist() == [tokenize.word_id(w) for w in words] and row[4:].tolist() == [0, 0]
    assert Tokenizer(6)("don't buy IT broke").tolist() == row.tolist()  # same ids in a fresh process-like tokenizer
    assert all(1 <= i < BUCKETS for i in row[:4])
    assert len(Tokenizer(3)("one two three four five")) == 3  # truncated to max_tokens


def test_amazon_csv_rows_become_token_rows_with_line_ids_and_zero_based_labels(tmp_path):
    raw = write_amazon_like(tmp_path / "raw", pool=30, test=10, num_classes=5, seed=1)
    prepared = prepare("amazon_review_full", raw, tmp_path, max_tokens=20)
    assert prepared.sizes == {"pool": 30, "test": 10} and prepared.num_classes == 5
    assert prepared.image_shape == (1, 1, 20) and prepared.feature_dtype == "int32"
    ids, tokens, labels = all_rows(prepared, "pool")
    with open(raw / "train.csv", newline="") as f:
        written = list(csv.reader(f))
    assert ids.tolist() == list(range(30))
    assert labels.tolist() == [int(row[0]) - 1 for row in written]
    assert tokens.dtype == np.int32
    tokenize = Tokenizer(20)
    for i in (0, 17, 29):
        assert tokens[i, 0, 0].tolist() == tokenize(f"{written[i][1]} . {written[i][2]}").tolist()


@pytest.mark.parametrize(
    "line, message",
    [
        ('"3","title","text"', r"train.csv line 4: label '3' is not one of 1..2; Amazon Review Full has labels 1..5"),
        ('"1","title only"', r"train.csv line 4 has 2 fields, expected 3"),
        ('"one","title","text"', r"train.csv line 4: label 'one' is not one of 1..2"),
    ],
)
def test_bad_amazon_rows_are_named_by_file_and_line_and_nothing_is_written(tmp_path, line, message):
    raw = write_amazon_like(tmp_path / "raw", pool=5, test=3)
    lines = (raw / "train.csv").read_text().splitlines()
    lines[3] = line
    (raw / "train.csv").write_text("\n".join(lines) + "\n")
    expect_one_line(DataError, message, lambda: prepare("amazon_review_polarity", raw, tmp_path))
    assert not list(tmp_path.glob("cache/**/*.parquet"))


def test_a_missing_amazon_file_is_named(tmp_path):
    raw = write_amazon_like(tmp_path / "raw", pool=5, test=3)
    (raw / "test.csv").unlink()
    expect_one_line(
        DataError, r"missing data file .*test.csv", lambda: prepare("amazon_review_polarity", raw, tmp_path)
    )


TINY = ["schedule.initial=4", "schedule.rounds=1", "schedule.round_size=4"]  # fits the 20-row pool


def test_image_models_and_augmentation_are_refused_on_text_and_text_models_on_images(tmp_path):
    raw = write_amazon_like(tmp_path / "raw", pool=20, test=4)
    text = prepare("amazon_review_polarity", raw, tmp_path)
    config = load_config(
        None, [*TINY, "data.dataset=amazon_review_polarity", "proxy.name=fasttext", "target.name=small_cnn"]
    )
    expect_one_line(
        ConfigError,
        r"target.name small_cnn reads pixels, but amazon_review_polarity holds tokens: "
        r"set target.name to one of fasttext, text_cnn",
        lambda: plan_run(config, text),
    )
    config = load_config(
        None,
        [
            *TINY,
            "data.dataset=amazon_review_polarity",
            "proxy.name=fasttext",
            "target.name=text_cnn",
            "data.augment=crop_flip",
        ],
    )
    expect_one_line(
        ConfigError,
        r"data.augment = crop_flip transforms images, but amazon_review_polarity holds text",
        lambda: plan_run(config, text),
    )
    plan_run(
        load_config(
            None, [*TINY, "data.dataset=amazon_review_polarity", "proxy.name=fasttext", "target.name=text_cnn"]
        ),
        text,
    )
    images = load_config(None, [*TINY, "proxy.name=fasttext"])
    fashion = text.__class__(
        **{**text.__dict__, "dataset": "fashion_mnist", "image_shape": (1, 28, 28), "feature_dtype": "uint8"}
    )
    expect_one_line(
        ConfigError,
        r"proxy.name fasttext reads tokens, but fashion_mnist holds pixels",
        lambda: plan_run(images, fashion),
    )


@pytest.mark.parametrize("name", ["fasttext", "text_cnn"])
def test_text_models_learn_the_generated_reviews(name):
    rng = np.random.default_rng(0)
    tokenize = Tokenizer(24)

    def tensors(n):
        rows = amazon_rows(n, 2, rng)
        tokens = tokenize.batch([f"{title} . {text}" for _, title, text in rows])[:, None, None, :]
        return torch.from_numpy(tokens), torch.tensor([label - 1 for label, _, _ in rows])

    train_x, train_y = tensors(200)
    test_x, test_y = tensors(100)
    torch.manual_seed(0)
    model = create_model(name, 1, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_steps(
        model,
        optimizer,
        train_x,
        train_y,
        steps=60,
        batch_size=32,
        lr=0.1,
        mean=0.0,
        std=1.0,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
    )
    assert accuracy(model, test_x, test_y, mean=0.0, std=1.0, device=torch.device("cpu")) >= 0.9
    assert model.embed(test_x[:4].long()).shape[0] == 4


def test_a_csv_that_is_not_utf8_is_named(tmp_path):
    raw = write_amazon_like(tmp_path / "raw", pool=5, test=3)
    (raw / "train.csv").write_bytes((raw / "train.csv").read_bytes() + b'"1","caf\xe9","latin-1 text"\n')
    expect_one_line(
        DataError, r"train.csv line 6 is not UTF-8 text", lambda: prepare("amazon_review_polarity", raw, tmp_path)
    )
