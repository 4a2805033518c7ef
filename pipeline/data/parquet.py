"""Any Parquet table of images or texts, with its column names given in the config.

    DATA_DIR/train.parquet  or  DATA_DIR/train/*.parquet     the pool
    DATA_DIR/test.parquet   or  DATA_DIR/test/*.parquet      the test split
    DATA_DIR/validation.parquet or DATA_DIR/validation/*.parquet  optional: the validation split
                      every choice is made on (instead of data.validation's rows held out of the pool)

data.feature_column   the images, either
                      - encoded bytes (binary, or a struct with a `bytes` field as Hugging Face
                        datasets writes it): decoded with torchvision, short side resized to
                        data.image_size, centre-cropped; or
                      - pixels: a list of C*H*W integers in 0..255 per row, row-major, with
                        data.image_shape: [C, H, W]
data.text_column      or, instead of images, a string column of texts: tokenised as the Amazon
                      Review sources tokenise theirs (pipeline.data.amazon), so the same text
                      models read them; data.feature_column is then not read
data.label_column     integer class labels in [0, K); K is one more than the largest label of
                      any split
data.id_column        optional stable non-negative int64 ids, unique within a split; required in
                      the pool when named, used in the other splits when present there (default:
                      the row's position, files read in name order)

Normalisation statistics of images are measured per channel on the pool while it is written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.types as pat

from pipeline.data.base import SOURCES, Source
from pipeline.data.image_folder import decode_encoded, describe_error, quiet_decoders
from pipeline.data.tokens import BUCKETS, Tokenizer
from pipeline.errors import ConfigError, DataError

SPLIT_NAMES = {"pool": "train", "validation": "validation", "test": "test"}
OPTIONAL = ("validation",)
READ_ROWS = 1024


@SOURCES.register("parquet")
class ParquetTable(Source):
    default_augment = "none"

    def __init__(self, data_dir: Path, options=None):
        super().__init__(data_dir, options)
        self._num_classes: int | None = None
        if self.options.text_column is None:
            self.mean, self.std = 0.5, 0.25  # replaced by the pool's statistics once it is read
        else:
            self.mean, self.std = 0.0, 1.0  # token ids are not normalised

    # --- the layout ------------------------------------------------------------------------

    def split_files(self, split: str) -> list[Path]:
        """The split's files; none for an optional split the directory lacks."""
        name = SPLIT_NAMES[split]
        single, folder = self.data_dir / f"{name}.parquet", self.data_dir / name
        if single.is_file():
            return [single]
        if split in OPTIONAL and not folder.is_dir():
            return []
        if folder.is_dir():
            files = sorted(folder.glob("*.parquet"))
            if files:
                return files
            raise DataError(f"parquet: {folder} holds no .parquet files; put the {name} table there")
        raise DataError(
            f"parquet: missing {single} (or a {folder}/ directory of .parquet files); "
            "pass the directory that holds them with --data-dir"
        )

    def files(self) -> list[Path]:
        return [f for split in self._splits() for f in self.split_files(split)]

    def has_validation(self) -> bool:
        return bool(self.split_files("validation"))

    def _splits(self) -> list[str]:
        return [split for split in SPLIT_NAMES if split not in OPTIONAL or self.split_files(split)]

    def params(self) -> dict[str, Any]:
        o = self.options
        return {
            "feature_column": o.feature_column,
            "label_column": o.label_column,
            "id_column": o.id_column,
            "image_shape": list(o.image_shape) if o.image_shape else None,
            "image_size": o.image_size,
            "skip_corrupt": o.skip_corrupt,
            # only for texts, so the cache key of a table of images is what it was before texts
            **(
                {}
                if o.text_column is None
                else {"text_column": o.text_column, "max_tokens": o.max_tokens, "buckets": BUCKETS}
            ),
        }

    @property
    def feature_dtype(self) -> str:
        return "uint8" if self.options.text_column is None else "int32"

    @property
    def _column(self) -> str:
        """The column that becomes the pool's `image`: the texts, or else the images."""
        o = self.options
        return o.feature_column if o.text_column is None else o.text_column

    def _dataset(self, split: str) -> pads.Dataset:
        files = self.split_files(split)
        try:
            return pads.dataset([str(f) for f in files], format="parquet")
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"parquet: {', '.join(map(str, files))} is not a readable Parquet table "
                f"({describe_error(exc)}); re-write or re-copy it"
            ) from None

    def check(self) -> None:
        """Every named column exists with a usable type, and the labels give the class count."""
        super().check()
        o = self.options
        largest = -1
        for split in self._splits():
            dataset = self._dataset(split)
            where = ", ".join(str(f) for f in self.split_files(split))
            schema = dataset.schema
            feature = "feature" if o.text_column is None else "text"
            for role, column in ((feature, self._column), ("label", o.label_column), ("id", o.id_column)):
                if role == "id" and split != "pool":
                    continue
                if column is not None and column not in schema.names:
                    raise DataError(
                        f"parquet: {where} has no column '{column}' (data.{role}_column); its columns "
                        f"are {', '.join(schema.names)}"
                    )
            for role, column in (("label", o.label_column), ("id", o.id_column)):
                if column is not None and column in schema.names and not pat.is_integer(schema.field(column).type):
                    raise DataError(
                        f"parquet: column '{column}' of {where} is {schema.field(column).type}, "
                        f"not integers; write the {role}s as integers"
                    )
            self._feature_kind(schema.field(self._column).type, where)
            labels = dataset.to_table(columns=[o.label_column]).column(0)
            if labels.null_count:
                raise DataError(
                    f"parquet: column '{o.label_column}' of {where} has {labels.null_count} missing "
                    "labels; fill or drop those rows"
                )
            if len(labels):
                low, high = pc.min(labels).as_py(), pc.max(labels).as_py()
                if low < 0:
                    raise DataError(
                        f"parquet: column '{o.label_column}' of {where} holds label {low}; labels must be 0..K-1"
                    )
                largest = max(largest, high)
        self._num_classes = largest + 1

    def _feature_kind(self, type_: pa.DataType, where: str) -> str:
        """'text', 'encoded' or 'pixels', or a DataError saying what the column must be."""
        o = self.options
        if o.text_column is not None:
            if pat.is_string(type_) or pat.is_large_string(type_):
                return "text"
            raise DataError(
                f"parquet: column '{o.text_column}' of {where} is {type_}, not text; write the texts "
                "as strings, or set data.text_column to a column of strings"
            )
        if pat.is_binary(type_) or pat.is_large_binary(type_):
            return "encoded"
        if pat.is_struct(type_) and type_.get_field_index("bytes") >= 0:
            return "encoded"
        if (pat.is_list(type_) or pat.is_large_list(type_) or pat.is_fixed_size_list(type_)) and pat.is_integer(
            type_.value_type
        ):
            if o.image_shape is None:
                raise DataError(
                    f"parquet: column '{o.feature_column}' of {where} holds pixel lists; "
                    "give their shape with data.image_shape: [C, H, W]"
                )
            return "pixels"
        raise DataError(
            f"parquet: column '{o.feature_column}' of {where} is {type_}; it must hold encoded image "
            "bytes or lists of C*H*W uint8 pixels"
        )

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            self.check()  # counts the labels, or raises
        return cast(int, self._num_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        o = self.options
        kind = self._feature_kind(self._dataset("pool").schema.field(self._column).type, str(self.data_dir))
        if kind == "text":
            return (1, 1, o.max_tokens)
        if kind != "pixels":
            return (3, o.image_size, o.image_size)
        if o.image_shape is None:  # _feature_kind refuses these already; a direct caller gets the same fix
            raise ConfigError(f"{self.data_dir} holds pixel lists: set data.image_shape to [C, H, W]")
        c, h, w = o.image_shape  # validate() checked its three sizes
        return (c, h, w)

    # --- reading -------------------------------------------------------------------------------

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        o = self.options
        dataset = self._dataset(split)
        where = ", ".join(str(f) for f in self.split_files(split))
        kind = self._feature_kind(dataset.schema.field(self._column).type, where)
        shape = self.image_shape
        with_ids = o.id_column is not None and o.id_column in dataset.schema.names
        columns = [self._column, o.label_column] + ([o.id_column] if with_ids else [])
        tokenize = Tokenizer(o.max_tokens)
        histogram = np.zeros((shape[0], 256), dtype=np.int64)  # per channel: pixels of each value
        position, skipped = 0, 0
        for record_batch in dataset.to_batches(columns=columns, batch_size=READ_ROWS):
            n = record_batch.num_rows
            if n == 0:
                continue
            labels = record_batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64)
            if with_ids:
                id_column = record_batch.column(2)
                if id_column.null_count:
                    raise DataError(f"parquet: column '{o.id_column}' of {where} has missing ids; give every row an id")
                ids = id_column.to_numpy(zero_copy_only=False).astype(np.int64)
            else:
                ids = np.arange(position, position + n, dtype=np.int64)
            position += n
            feature = record_batch.column(0)
            if kind == "text":
                images, ok = self._tokens(feature, ids, with_ids, where, tokenize), np.ones(n, dtype=bool)
            elif kind == "pixels":
                images, ok = self._pixels(feature, shape, where), np.ones(n, dtype=bool)
            else:
                images, ok = self._decode(feature, ids, where)
                skipped += int((~ok).sum())
            images, labels, ids = images[ok], labels[ok], ids[ok]
            if split == "pool" and kind != "text":
                for c in range(shape[0]):
                    histogram[c] += np.bincount(images[:, c].reshape(-1), minlength=256)
            yield images, labels, ids
        if skipped:
            print(
                f"clactive: parquet {SPLIT_NAMES[split]}: skipped {skipped} of {position} images",
                file=sys.stderr,
                flush=True,
            )
        if split == "pool" and histogram.sum():
            values = np.arange(256) / 255.0
            counts = histogram / histogram.sum(axis=1, keepdims=True)
            mean = counts @ values
            std = np.sqrt(np.maximum(counts @ values**2 - mean**2, 0.0))
            self.mean, self.std = tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)

    def _tokens(self, texts: pa.Array, ids: np.ndarray, with_ids: bool, where: str, tokenize: Tokenizer) -> np.ndarray:
        """A string column -> int32 (n, 1, 1, max_tokens) hashed word ids."""
        values = texts.to_pylist()
        for i, text in enumerate(values):
            if text is None or not text.strip():
                row = f"the row with {self.options.id_column} {ids[i]}" if with_ids else f"row {ids[i]} (from 0)"
                raise DataError(
                    f"parquet: column '{self.options.text_column}' of {where} has no text in {row}; "
                    "write the text or drop that row"
                )
        return tokenize.batch(values)[:, None, None, :]

    def _pixels(self, feature: pa.Array, shape: tuple[int, int, int], where: str) -> np.ndarray:
        size = int(np.prod(shape))
        if feature.null_count:
            raise DataError(
                f"parquet: column '{self.options.feature_column}' of {where} has missing images; drop those rows"
            )
        lengths = pc.list_value_length(feature).to_numpy(zero_copy_only=False)
        if (lengths != size).any():
            bad = int(lengths[lengths != size][0])
            raise DataError(
                f"parquet: column '{self.options.feature_column}' of {where} has a row of {bad} "
                f"values, but data.image_shape {list(shape)} needs {size}; fix data.image_shape"
            )
        values = feature.flatten().to_numpy(zero_copy_only=False)
        if len(values) and (values.min() < 0 or values.max() > 255):
            raise DataError(
                f"parquet: column '{self.options.feature_column}' of {where} holds pixel values "
                f"outside 0..255 ({values.min()}..{values.max()}); write uint8 pixels"
            )
        return values.astype(np.uint8).reshape((len(feature), *shape))

    def _decode(self, feature: pa.Array, ids: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
        import torch

        if pat.is_struct(feature.type):
            feature = feature.field("bytes")
        size = self.options.image_size
        images = np.zeros((len(feature), 3, size, size), dtype=np.uint8)
        ok = np.ones(len(feature), dtype=bool)
        for i, raw in enumerate(feature.to_pylist()):
            try:
                if not raw:
                    raise ValueError("no image bytes")
                with quiet_decoders():
                    images[i] = decode_encoded(torch.frombuffer(bytearray(raw), dtype=torch.uint8), size).numpy()
            except Exception as exc:  # torchvision raises several types for a bad image
                if not self.options.skip_corrupt:
                    raise DataError(
                        f"parquet: cannot decode the image of id {ids[i]} in {where} "
                        f"({describe_error(exc)}); replace it, or set data.skip_corrupt: true "
                        "to skip such images"
                    ) from None
                print(
                    f"clactive: skipped corrupt image id {ids[i]} in {where} ({describe_error(exc)})",
                    file=sys.stderr,
                    flush=True,
                )
                ok[i] = False
        return images, ok
