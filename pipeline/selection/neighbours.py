"""Candidates near what is labelled (scoring.candidates_from: neighbours). Numpy and faiss, no Ray.

SEALS (Coleman et al., "Similarity Search for Efficient Active Learning and Search of Rare
Concepts", AAAI 2022) scores only the nearest neighbours of the labelled set in an embedding space
instead of the whole pool or a uniform sample of it: the examples a model is unsure about sit near
its decision boundary, and the labelled examples are what drew it there. The index is built once,
over embeddings of every pool row under the round-0 model; each round's candidates are the
`neighbours` nearest unlabelled examples of every labelled one, so they grow as labels arrive.

Bounded memory. A pool up to FLAT_MAX rows gets an exact index (4·D bytes a row). A larger one gets
an IVF-PQ index (faiss): trained on a seeded sample of TRAIN_SAMPLE rows' embeddings, then each
scorer encodes its own shard into a copy of the trained, empty index (PQ_BYTES bytes of code and an
8-byte id a row: 29 MB for 1.2M rows) and the copies are merged, so no process ever holds the
pool's embeddings. The labelled examples' query vectors are read back from the index itself
(approximately, for PQ). A search that reaches fewer than `neighbours` rows fills with -1, which
is dropped.

Index spaces: every id here is a pool id; `search` rows are aligned with the query ids.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.selection.candidates import draw_candidates
from pipeline.selection.collector import Collector, LabelledDistances, ModelOutput, Picked, one_array

FLAT_MAX = 100_000  # pools up to this many rows get an exact index
TRAIN_SAMPLE = 50_000  # rows whose embeddings train the IVF-PQ quantizers
PQ_BYTES = 16  # bytes of code per row (8-bit sub-quantizers), where the embedding width allows
NPROBE = 16  # inverted lists a search visits


def _faiss():
    import faiss  # imported where an index is built: a run without neighbours never loads it

    faiss.omp_set_num_threads(1)  # a fraction of a CPU is what the process was given
    return faiss


def train_index(sample: np.ndarray, pool_size: int, seed: int) -> bytes:
    """An empty index for `pool_size` rows of the sample's width, trained on `sample` (S, D) where it
    needs training, serialized (it travels to the scorers)."""
    faiss = _faiss()
    dim = sample.shape[1]
    if pool_size <= FLAT_MAX:
        return faiss.serialize_index(faiss.IndexIDMap2(faiss.IndexFlatL2(dim))).tobytes()
    lists = max(1, min(4 * int(math.sqrt(pool_size)), len(sample) // 39))  # faiss wants 39 points a list
    sub = next(m for m in (PQ_BYTES, 8, 4, 2, 1) if dim % m == 0)
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(dim), dim, lists, sub, 8)
    index.cp.seed = index.pq.cp.seed = seed
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return faiss.serialize_index(index).tobytes()


class NeighbourIndex:
    """A faiss index of pool rows' embeddings, picklable (as its serialized bytes)."""

    def __init__(self, serialized: bytes):
        self.index = _faiss().deserialize_index(np.frombuffer(serialized, dtype=np.uint8))
        self._readable = False  # IVF reads vectors back by id through a direct map, made once merged

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, pool_ids: np.ndarray, embeddings: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(embeddings, np.float32), np.asarray(pool_ids, np.int64))

    def merge(self, other: NeighbourIndex) -> None:
        self.index.merge_from(other.index, 0)

    def near(self, pool_ids: np.ndarray, neighbours: int) -> np.ndarray:
        """The ascending distinct pool ids among the `neighbours` nearest rows of each of `pool_ids`'
        rows (themselves included)."""
        if len(pool_ids) == 0 or self.size == 0:
            return np.empty(0, np.int64)
        faiss = _faiss()
        if not self._readable and isinstance(self.index, faiss.IndexIVF):
            self.index.set_direct_map_type(faiss.DirectMap.Hashtable)
            self.index.nprobe = NPROBE
        self._readable = True
        queries = np.stack([self.index.reconstruct(int(i)) for i in pool_ids])
        _, found = self.index.search(queries, min(neighbours + 1, self.size))  # +1: a row finds itself
        return np.unique(found[found >= 0])

    def __getstate__(self) -> dict:
        return {"serialized": _faiss().serialize_index(self.index).tobytes()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["serialized"])  # type: ignore[misc]


def neighbour_candidates(
    near_ids: np.ndarray, unlabelled_ids: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, int]:
    """(ascending candidate ids, how many of them are neighbours): the unlabelled among `near_ids`
    (the labelled examples' neighbours, ascending); a seeded uniform `count` of them when there are
    more, topped up with uniform draws from the other unlabelled ids when there are fewer."""
    near = np.intersect1d(near_ids, unlabelled_ids, assume_unique=True)
    if len(near) >= count:
        drawn = draw_candidates(near, count, seed)
        return (near if drawn is None else drawn), count
    rest = np.setdiff1d(unlabelled_ids, near, assume_unique=True)
    fill = draw_candidates(rest, count - len(near), seed)
    return np.union1d(near, rest if fill is None else fill), len(near)


class EmbeddingPass:
    """The scorers' passes that build an index, in an acquisition's shape (needs, collector): a
    sample's embeddings to train on (`trained` None), then every row into the trained index."""

    needs: str | None = "embeddings"

    def __init__(self, trained: bytes | None = None):
        self.trained = trained

    def collector(self, k: int, seed: int) -> Collector:
        return SampleCollector() if self.trained is None else IndexCollector(NeighbourIndex(self.trained))


class SampleCollector(Collector):
    """Every pushed row's embedding (a training sample: TRAIN_SAMPLE rows at most)."""

    k = 0

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    @property
    def seen(self) -> int:
        return sum(len(part) for part in self.parts)

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        embeddings = one_array(out)
        if embeddings is not None:
            self.parts.append(np.asarray(embeddings, np.float32))

    def merge(self, other: SampleCollector) -> None:
        self.parts += other.parts

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        raise TypeError("an embedding pass selects nothing: read its rows")

    def rows(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty((0, 0), np.float32)


class IndexCollector(Collector):
    """A shard's rows encoded into a copy of the trained index; merged, the whole pool's index."""

    k = 0

    def __init__(self, index: NeighbourIndex):
        self.index = index

    @property
    def seen(self) -> int:
        return self.index.size

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        embeddings = one_array(out)
        if embeddings is not None and len(pool_ids):
            self.index.add(pool_ids, embeddings)

    def merge(self, other: IndexCollector) -> None:
        self.index.merge(other.index)

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        raise TypeError("an embedding pass selects nothing: read its index")
