"""Restoring label order after the store's join: a scatter that refuses anything but a bijection."""

from __future__ import annotations

import pyarrow as pa
import pytest

from features.pit import _in_label_order


def test_rows_are_put_back_at_their_label_positions() -> None:
    joined = pa.table({"__rp_row": [2, 0, 3, 1], "x": ["c", "a", "d", "b"]})
    assert _in_label_order(joined, 4).column("x").to_pylist() == ["a", "b", "c", "d"]


@pytest.mark.parametrize("rows", [[0, 1], [0, 0, 2], [0, 1, 3], [0, 1, 2, 2]])
def test_lost_duplicated_or_foreign_rows_are_an_error_not_a_silent_frame(rows: list[int]) -> None:
    joined = pa.table({"__rp_row": rows, "x": list(range(len(rows)))})
    with pytest.raises(RuntimeError, match="one-to-one onto 3 labels"):
        _in_label_order(joined, 3)
