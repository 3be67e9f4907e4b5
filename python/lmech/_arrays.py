"""numpy arrays to and from the native module: inputs go in as
C-contiguous float64, results come back as (bytearray, shape) pairs that
are viewed without a copy."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_native(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous float64 array (what the engine reads)."""
    return np.ascontiguousarray(np.asarray(a), dtype=np.float64)


def from_native(pair: tuple[bytearray, list[int]]) -> np.ndarray:
    """A native (bytearray, shape) result as a writable float64 array."""
    data, shape = pair
    return np.frombuffer(data, dtype=np.float64).reshape(shape)
