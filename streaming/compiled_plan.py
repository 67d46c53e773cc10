"""One generated Python function per feature group for the stream engine's two hot loops (a tiny query compiler).

Interpreting a group's aggregations per event (one closure per spec and filter, one evaluator call
per spec and window, an ``is_missing`` call per value) cost more than the arithmetic. At start-up
the group's specs are written out as Python source instead and compiled once:

* ``contributions(values, flags)``: what one event adds to every contribution *column* (filters
  inlined as comparisons, each column's missing test done once). Columns are shared between specs
  that read the same thing (a sum and a mean of one column under the same filters), and a count
  without filters has no column at all (it is ``hi - lo``).
* ``append(columns, values, flags)``: the same, appended to the columns (an in-order event).
* ``evaluate(times, columns, t)``: every feature as of ``t``: one bisect per distinct window length,
  then per spec the nested windows grow outward (each event of the largest window is read once).

``CompiledGroup.source`` holds the generated text (print it to debug a group). The semantics are
``streaming.window_state``'s (checked against the oracle by the property tests): non-matching or
missing values store the function's neutral element (0 for counts and sums, +inf/-inf for min/max,
None for distinct and last); a mean is a sum column over a 0/1 column counting its present values.
Float sums add the nested windows' partial sums (rounding differs from a left-to-right sum in the last
bits: within the oracle's 1e-9 tolerance); counts and integer sums are exact.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from features.definitions.filters import Filter
from streaming.compiled_filters import NAMESPACE, present_source, where_source

POS_INF = float("inf")  # neutral element of min: never smaller than a real value (identity marks it)
NEG_INF = float("-inf")  # neutral element of max


@dataclass(frozen=True)
class Spec:
    """One aggregation function over one column with its filters; shared by all its windows."""

    function: str
    column: str | None
    where: tuple[Filter, ...]
    windows_us: tuple[int, ...]  # ascending
    names: tuple[str, ...]  # feature name per window, same order
    integer: bool  # sum of an int64 column stays int


def _extreme(pick: Callable[..., Any], neutral: float) -> Callable[[list[Any]], Any]:
    def extreme(seq: list[Any]) -> Any:
        best = pick(seq, default=neutral)
        if best == neutral:  # all neutral, or a genuine infinity: decide on the real values only
            real = [v for v in seq if v is not neutral]
            return pick(real) if real else None
        return best
    return extreme


_RUNTIME = {**NAMESPACE, "_bisect": bisect_right, "_sum": sum, "_POS_INF": POS_INF, "_NEG_INF": NEG_INF,
            "_min": _extreme(min, POS_INF), "_max": _extreme(max, NEG_INF)}


@dataclass(frozen=True)
class CompiledGroup:
    contributions: Callable[[Sequence[Any], Sequence[Any]], list[Any]]
    append: Callable[[list[list[Any]], Sequence[Any], Sequence[Any]], None]
    evaluate: Callable[[list[int], list[list[Any]], int], list[Any]]
    n_columns: int
    source: str


class _Columns:
    """Distinct contribution expressions, numbered in first-use order (the generated ``cols[i]``)."""

    def __init__(self) -> None:
        self.expressions: list[str] = []
        self.read: set[str] = set()  # source columns the expressions read

    def add(self, expression: str, reads: Sequence[str]) -> int:
        self.read.update(reads)
        if expression not in self.expressions:
            self.expressions.append(expression)
        return self.expressions.index(expression)

    def value(self, spec: Spec, neutral: str) -> int:
        """The spec's column value where the event matches and the value is present, else ``neutral``."""
        assert spec.column is not None
        where = where_source(spec.where)
        test = f"p_{spec.column}" if where == "True" else f"{where} and p_{spec.column}"
        return self.add(f"c_{spec.column} if {test} else {neutral}", [spec.column, *(f.field for f in spec.where)])

    def indicator(self, spec: Spec, column: str | None) -> int:
        """1 where the event matches (and ``column`` is present, when given), else 0."""
        where = where_source(spec.where)
        test = where if column is None else (f"p_{column}" if where == "True" else f"{where} and p_{column}")
        return self.add(f"1 if {test} else 0", [*([column] if column else []), *(f.field for f in spec.where)])


def _nested(lines: list[str], spec: Spec, lows: list[str], first: str, grow: str, result: str) -> None:
    """Windows of one spec grow outward from the right edge ``hi``: ``first`` over ``[lows[0]:hi]``, then
    ``grow`` over each ring ``[lows[k]:lows[k-1]]``; ``result`` reads the accumulator into the feature."""
    edge = "hi"
    for k, (name, lo) in enumerate(zip(spec.names, lows, strict=True)):
        lines.append("    " + (first if k == 0 else grow).format(lo=lo, edge=edge))
        lines.append(f"    f_{name} = {result}")
        edge = lo


def _spec_source(lines: list[str], spec: Spec, columns: _Columns, lows: list[str]) -> None:
    function = spec.function
    lines.append(f"    # {function}({spec.column or '*'}) where {where_source(spec.where)}")
    if function == "count" and not spec.where:
        lines += [f"    f_{name} = hi - {lo}" for name, lo in zip(spec.names, lows, strict=True)]
    elif function == "count" or (function == "sum" and spec.integer):
        i = columns.indicator(spec, None) if function == "count" else columns.value(spec, "0")
        _nested(lines, spec, lows, f"s = _sum(cols[{i}][{{lo}}:{{edge}}])", f"s += _sum(cols[{i}][{{lo}}:{{edge}}])",
                "s")
    elif function == "sum":
        i = columns.value(spec, "0.0")
        _nested(lines, spec, lows, f"s = _sum(cols[{i}][{{lo}}:{{edge}}], 0.0)",
                f"s += _sum(cols[{i}][{{lo}}:{{edge}}])", "s")
    elif function == "mean":
        i, j = columns.value(spec, "0" if spec.integer else "0.0"), columns.indicator(spec, spec.column)
        _nested(lines, spec, lows, f"s = _sum(cols[{i}][{{lo}}:{{edge}}], 0.0); n = _sum(cols[{j}][{{lo}}:{{edge}}])",
                f"s += _sum(cols[{i}][{{lo}}:{{edge}}]); n += _sum(cols[{j}][{{lo}}:{{edge}}])", "s / n if n else None")
    elif function == "count_distinct":
        i = columns.value(spec, "None")
        _nested(lines, spec, lows, f"d = set(cols[{i}][{{lo}}:{{edge}}])", f"d.update(cols[{i}][{{lo}}:{{edge}}])",
                "len(d) - (None in d)")
    elif function == "last":
        i = columns.value(spec, "None")
        lines += [f"    c = cols[{i}]", "    k = hi - 1", f"    while k >= {lows[-1]} and c[k] is None:",
                  "        k -= 1"]
        lines += [f"    f_{name} = c[k] if k >= {lo} else None" for name, lo in zip(spec.names, lows, strict=True)]
    elif function in ("min", "max"):
        i = columns.value(spec, "_POS_INF" if function == "min" else "_NEG_INF")
        lines += [f"    f_{name} = _{function}(cols[{i}][{lo}:hi])" for name, lo in zip(spec.names, lows, strict=True)]
    else:
        raise ValueError(f"aggregation function {function!r} has no stream implementation")


def compile_group(specs: Sequence[Spec], row_columns: Sequence[str], flag_names: Sequence[str]) -> CompiledGroup:
    """Generate and compile the group's ``contributions`` and ``evaluate`` (``row_columns``: the event values'
    order, ``flag_names``: the first-seen flags' order)."""
    columns = _Columns()
    windows = sorted({w for spec in specs for w in spec.windows_us})
    lo_name = {w: f"lo_{w // 1_000_000}s" if w % 1_000_000 == 0 else f"lo_{w}us" for w in windows}
    evaluate = ["def evaluate(times, cols, t):", "    hi = _bisect(times, t)"]
    edge = "hi"
    for w in windows:  # ascending lengths: each lower edge is at or before the previous one
        evaluate.append(f"    {lo_name[w]} = _bisect(times, t - {w}, 0, {edge})")
        edge = lo_name[w]
    for spec in specs:
        _spec_source(evaluate, spec, columns, [lo_name[w] for w in spec.windows_us])
    evaluate.append("    return [")
    evaluate += [f"        f_{name}," for spec in specs for name in spec.names]
    evaluate.append("    ]")

    row = []  # the event's values and flags as locals, and whether each one read is present
    for names, sequence in ((row_columns, "values"), (flag_names, "flags")):
        if names:
            row.append(f"    {''.join(f'c_{n}, ' for n in names)}= {sequence}")
    row += [f"    p_{name} = {present_source(name)}" for name in (*row_columns, *flag_names) if name in columns.read]
    contributions = ["def contributions(values, flags):", *row, "    return ["]
    contributions += [f"        {expression}," for expression in columns.expressions]
    contributions.append("    ]")
    append = ["def append(cols, values, flags):", *row]  # in-order events: no list per event
    append += [f"    cols[{i}].append({expression})" for i, expression in enumerate(columns.expressions)]
    append.append("    return None")

    source = "\n\n\n".join("\n".join(f) for f in (contributions, append, evaluate)) + "\n"
    namespace = dict(_RUNTIME)
    exec(compile(source, "<stream group plan>", "exec"), namespace)  # built from validated definitions only
    return CompiledGroup(namespace["contributions"], namespace["append"], namespace["evaluate"],
                         len(columns.expressions), source)
