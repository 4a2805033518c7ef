"""Ids and positions. A pool id is an example's stable int64 name; a position is an index into one
particular array of ids, and the name of a position says which (label_pos, cand_pos, batch_pos)."""

from __future__ import annotations

import numpy as np


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which `values` (e.g. pool ids) occur in the ascending array `sorted_set`."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def positions_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in `ids` (unique, in any order) of each of `wanted` (all of them in `ids`), in
    `wanted`'s order: how rows read by id are put back in the order they were asked for."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], wanted)]
