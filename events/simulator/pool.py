"""Vectorized strings for the simulator: one pool of every id and code, addressed by int.

Building millions of Python strings is what makes naive simulators slow. Instead every
string the simulator can emit (account ids, devices, IPs, merchants, countries, literal
codes...) lives once in one Arrow string array, generation works on int64 indexes into it
with numpy, and a column is materialized with a single ``take`` in C++. Ids that must be
unique per event (``event_id``) are formatted straight into an Arrow buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

ID_HEX_DIGITS = 12
# byte -> its two hex characters, laid out so that viewing the result as bytes reads left to right
_HEX_PAIRS = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint16)


def hex_ids(prefix: str, values: np.ndarray) -> pa.StringArray:
    """``prefix`` + 12 lower-case hex digits of each value, as an Arrow string array (no Python loop)."""
    values = np.asarray(values, dtype=np.uint64)
    n, head = len(values), np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    width = len(head) + ID_HEX_DIGITS
    buf = np.empty((n, width), dtype=np.uint8)
    buf[:, : len(head)] = head
    low_bytes = values.astype(">u8").view(np.uint8).reshape(n, 8)[:, 8 - ID_HEX_DIGITS // 2:]
    buf[:, len(head):] = _HEX_PAIRS[low_bytes].view(np.uint8).reshape(n, ID_HEX_DIGITS)
    if (n + 1) * width < 2**31:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))
    offsets64 = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets64), pa.py_buffer(buf)).cast(pa.string())


def scrambled(start: int, n: int, salt: int) -> np.ndarray:
    """A bijective scramble of ``start..start+n`` into 40-bit numbers: ids look random but never collide.

    Fraudulent devices and legitimate ones come from the same sequence, so an id's shape
    never leaks ground truth to a model.
    """
    i = np.arange(start, start + n, dtype=np.uint64)
    mask = np.uint64((1 << 40) - 1)
    return ((i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)) & mask) ^ np.uint64(0x5BD1E995)


class StringPool:
    """Named ranges of strings concatenated into one Arrow array; ``take`` maps int64 -> string (-1 -> null)."""

    def __init__(self) -> None:
        self._parts: list[pa.Array] = []
        self.offset: dict[str, int] = {}
        self.size: dict[str, int] = {}
        self._n = 0
        self._strings: pa.Array | None = None

    def add(self, name: str, values: pa.Array | Sequence[str]) -> int:
        """Append a named range; returns its offset (its first global index)."""
        array = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
        self.offset[name], self.size[name] = self._n, len(array)
        self._parts.append(array.cast(pa.string()))
        self._n += len(array)
        self._strings = None
        return self.offset[name]

    def index(self, name: str, value: str) -> int:
        """Global index of one literal in a range (codes like ``"card_payment"``)."""
        strings = self.strings
        lo = self.offset[name]
        for i in range(self.size[name]):
            if strings[lo + i].as_py() == value:
                return lo + i
        raise KeyError(f"{value!r} not in pool range {name!r}")

    @property
    def strings(self) -> pa.Array:
        if self._strings is None:
            self._strings = pa.concat_arrays(self._parts) if self._parts else pa.array([], pa.string())
        return self._strings

    def take(self, idx: np.ndarray) -> pa.Array:
        idx = np.asarray(idx, dtype=np.int64)
        null = idx < 0
        indices = pa.array(np.where(null, 0, idx), mask=null if null.any() else None)
        return self.strings.take(indices)
