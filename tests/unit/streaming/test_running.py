"""Running aggregates against the exact truth: ``fractions.Fraction`` sums and plain ``set``s."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from streaming.running import ExactSum, count_in, count_out, multiset

floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
                   st.sampled_from([0.1, 0.2, 0.3, 1e16, -1e16, 5e-324, 1000.0]))


def _rounded(values: list[float], count: int = 1) -> float:
    return float(sum((Fraction(v) for v in values), Fraction(0)) / count)


@given(values=st.lists(floats, max_size=60))
def test_a_fresh_sum_is_the_exact_sum_rounded_once(values: list[float]) -> None:
    assert ExactSum.of(values).over() == _rounded(values)


@given(values=st.lists(floats, min_size=1, max_size=80), moves=st.lists(st.tuples(st.integers(0, 5),
                                                                                  st.integers(0, 5)), max_size=40))
def test_sliding_through_values_stays_exact(values: list[float], moves: list[tuple[int, int]]) -> None:
    """A window moved right by adding at its right edge and removing at its left edge, as ``slide`` moves it;
    cancellation (1e16 + 0.1 - 1e16) would leave a float running sum off by whole units."""
    lo = hi = 0
    total = ExactSum.of([])
    for grow, shrink in moves:
        new_hi = min(len(values), hi + grow)
        new_lo = min(new_hi, lo + shrink)
        total.add(values[hi:new_hi])
        total.add(values[lo:new_lo], -1)
        lo, hi = new_lo, new_hi
        assert total.over() == _rounded(values[lo:hi])
        if hi > lo:
            assert total.over(hi - lo) == _rounded(values[lo:hi], hi - lo)  # a mean, also rounded once


def test_infinities_are_counted_apart() -> None:
    total = ExactSum.of([1.0, math.inf])
    assert total.over() == math.inf
    total.add([-math.inf])
    assert math.isnan(total.over())  # inf + -inf, as a float sum gives
    total.add([math.inf, -math.inf], -1)
    assert total.over() == 1.0
    assert ExactSum.of([1e308, 1e308]).over() == math.inf  # past the float range, as a float sum goes


@given(values=st.lists(st.sampled_from([None, "a", "b", "c", 1]), min_size=1, max_size=60),
       moves=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=30))
def test_a_multiset_counts_the_distinct_values_of_its_window(values: list, moves: list[tuple[int, int]]) -> None:
    lo = hi = 0
    counts = multiset([])
    for grow, shrink in moves:
        new_hi = min(len(values), hi + grow)
        new_lo = min(new_hi, lo + shrink)
        count_in(counts, values[hi:new_hi])
        count_out(counts, values[lo:new_lo])
        lo, hi = new_lo, new_hi
        assert set(counts) == set(values[lo:hi])
        assert counts == multiset(values[lo:hi])
