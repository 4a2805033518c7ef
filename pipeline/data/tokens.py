"""Tokenisation that needs no vocabulary file and no download: hashed words.

A text becomes a fixed-length row of word ids: lower-cased words (letters, digits and inner
apostrophes), each hashed with CRC-32 into BUCKETS - 1 buckets numbered from 1; 0 pads. The same
ids feed the fastText proxy (which adds hashed bigrams itself) and the convolutional target, so
the pool stores one int32 column whatever model reads it. CRC-32 rather than Python's `hash`,
which is salted per process and would give every Ray worker different ids.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

BUCKETS = 2**17  # hashed word ids are 1..BUCKETS-1; models size their embeddings by it
PAD = 0
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class Tokenizer:
    """text -> int32 (max_tokens,) word ids, padded with PAD; memoises the words it has hashed."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self._ids: dict[str, int] = {}

    def word_id(self, word: str) -> int:
        found = self._ids.get(word)
        if found is None:
            found = 1 + zlib.crc32(word.encode()) % (BUCKETS - 1)
            if len(self._ids) < 2_000_000:  # bounded: a pool's long tail of rare words is not worth keeping
                self._ids[word] = found
        return found

    def __call__(self, text: str) -> np.ndarray:
        # The Amazon Review CSVs write line breaks as a literal backslash-n.
        words = _WORD.findall(text.replace("\\n", " ").lower())[: self.max_tokens]
        row = np.zeros(self.max_tokens, dtype=np.int32)
        row[: len(words)] = [self.word_id(w) for w in words]
        return row

    def batch(self, texts: list[str]) -> np.ndarray:
        """(n,) texts -> int32 (n, max_tokens)."""
        out = np.zeros((len(texts), self.max_tokens), dtype=np.int32)
        for i, text in enumerate(texts):
            out[i] = self(text)
        return out
