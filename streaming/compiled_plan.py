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
* ``slide(times, columns, t, a)``: the same features, moved from the previous point's running aggregates
  in ``a`` (``streaming.running``): a busy entity's point costs what entered and left its windows, not
  the windows' events (``window_state.evaluate_row`` picks one or the other).
* ``combos(values)``: per first-seen flag the event's key combination (``first_seen.combo_key``), or None
  when a key is missing: a generic loop over each flag's key columns was a tenth of the worker's time.

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
from streaming.first_seen import combo_key
from streaming.running import ExactSum, count_in, count_out, multiset

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
            "_min": _extreme(min, POS_INF), "_max": _extreme(max, NEG_INF), "_ExactSum": ExactSum,
            "_multiset": multiset, "_count_in": count_in, "_count_out": count_out, "_combo": combo_key}


@dataclass(frozen=True)
class CompiledGroup:
    contributions: Callable[[Sequence[Any], Sequence[Any]], list[Any]]
    append: Callable[[list[list[Any]], Sequence[Any], Sequence[Any]], None]
    evaluate: Callable[[list[int], list[list[Any]], int], list[Any]]
    slide: Callable[[list[int], list[list[Any]], int, list[Any]], list[Any]]
    combos: Callable[[Sequence[Any]], tuple[str | None, ...]]
    n_columns: int
    n_windows: int
    n_running: int  # running aggregates in ``slide``'s list (after its point, ``hi`` and the lower edges)
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
    ``grow`` over each ring ``[lows[k]:lows[k-1]]`` that holds events (an entity's events often all sit in its
    shortest window: an empty ring costs a comparison, not a slice and a call); ``result`` reads the accumulator
    into the feature."""
    edge = "hi"
    for k, (name, lo) in enumerate(zip(spec.names, lows, strict=True)):
        if k == 0:
            lines.append("    " + first.format(lo=lo, edge=edge))
        else:
            lines += [f"    if {lo} != {edge}:", "        " + grow.format(lo=lo, edge=edge)]
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


def _bounds(lines: list[str], windows: list[int], lo_name: dict[int, str], indent: str, first: str,
            lowest: Callable[[int], str]) -> None:
    """``hi`` and every window's lower edge as of ``t``; ``first``/``lowest(k)`` bound the searches from below."""
    lines.append(f"{indent}hi = _bisect(times, t, {first})")
    edge = "hi"
    for k, w in enumerate(windows):  # ascending lengths: each lower edge is at or before the previous one
        lines.append(f"{indent}{lo_name[w]} = _bisect(times, t - {w}, {lowest(k)}, {edge})")
        edge = lo_name[w]


_RUNNING = ("count", "sum", "mean", "count_distinct")  # the functions ``slide`` keeps a running aggregate of


def _slide_source(specs: Sequence[Spec], columns: _Columns, windows: list[int], lo_name: dict[int, str]
                  ) -> tuple[list[str], int]:
    """``slide(times, cols, t, a)``: ``evaluate`` for a point at or after the previous one of ``a``.

    ``a`` is ``[t, hi, lower edge per window, running aggregate per (spec, window)]`` of the previous point
    (``a[0]`` None: none yet, build every aggregate from its window). Each aggregate adds what entered at
    ``hi`` and takes out what left at its lower edge (``streaming.running``), so a point costs what changed
    since the previous one instead of the whole window. Unfiltered counts, ``last``, min and max read the
    window as ``evaluate`` does (``hi - lo``, a scan from ``hi``, and min/max cannot take values out).
    """
    slot = {w: 2 + k for k, w in enumerate(windows)}  # where each window's previous lower edge is kept
    build, adds, read = [], [], []
    removes: dict[int, list[str]] = {w: [] for w in windows}
    entered: set[str] = set()

    def enter(column: int, total: bool = False) -> str:
        """What entered column ``column`` since the previous point (its sum with ``total``), computed once."""
        name = f"{'sum' if total else 'add'}_{column}"
        if name not in entered:
            if total:
                enter(column)
            adds.append(f"        {name} = _sum(add_{column})" if total else f"        {name} = cols[{column}][hi0:hi]")
            entered.add(name)
        return name

    kept: dict[tuple[str, int, int], str] = {}  # (kind, column, window) -> its slot: one aggregate serves all

    def running(kind: str, column: int, w: int) -> str:
        """The slot of the running ``kind`` ("sum", "exact" or "multiset") of column ``column`` over window ``w``."""
        if (kind, column, w) not in kept:
            cell, whole, left = f"a[{2 + len(windows) + len(kept)}]", f"cols[{column}][{lo_name[w]}:hi]", \
                f"cols[{column}][a[{slot[w]}]:{lo_name[w]}]"
            if kind == "multiset":
                build.append(f"        {cell} = _multiset({whole})")
                adds.append(f"        _count_in({cell}, {enter(column)})")
                removes[w].append(f"        _count_out({cell}, {left})")
            elif kind == "exact":
                build.append(f"        {cell} = _ExactSum.of({whole})")
                adds.append(f"        {cell}.add({enter(column)})")
                removes[w].append(f"        {cell}.add({left}, -1)")
            else:
                build.append(f"        {cell} = _sum({whole})")
                adds.append(f"        {cell} += {enter(column, total=True)}")
                removes[w].append(f"        {cell} -= _sum({left})")
            kept[(kind, column, w)] = cell
        return kept[(kind, column, w)]

    for spec in specs:
        if spec.function not in _RUNNING or (spec.function == "count" and not spec.where):
            _spec_source(read, spec, columns, [lo_name[w] for w in spec.windows_us])
            continue
        read.append(f"    # {spec.function}({spec.column or '*'}) where {where_source(spec.where)}: running")
        kind = ("multiset" if spec.function == "count_distinct" else
                "exact" if spec.function in ("sum", "mean") and not spec.integer else "sum")
        if spec.function == "count":
            i = columns.indicator(spec, None)
        else:
            i = columns.value(spec, {"multiset": "None", "exact": "0.0", "sum": "0"}[kind])
        for name, w in zip(spec.names, spec.windows_us, strict=True):
            cell = running(kind, i, w)
            if spec.function == "mean":
                count = running("sum", columns.indicator(spec, spec.column), w)  # its present values
                mean = f"{cell}.over({count})" if kind == "exact" else f"{cell} / {count}"
                read.append(f"    f_{name} = {mean} if {count} else None")
            elif kind == "multiset":
                read.append(f"    f_{name} = len({cell}) - (None in {cell})")
            else:
                read.append(f"    f_{name} = {cell}.over()" if kind == "exact" else f"    f_{name} = {cell}")
    lines = ["def slide(times, cols, t, a):", "    if a[0] is None:"]
    _bounds(lines, windows, lo_name, "        ", "0", lambda k: "0")
    lines += build
    lines += ["    else:", "        hi0 = a[1]"]
    _bounds(lines, windows, lo_name, "        ", "hi0", lambda k: f"a[{slot[windows[k]]}]")
    # entering and leaving, each only where it happened (a point mostly adds its event and removes nothing)
    for test, body in (("hi0 != hi", adds), *((f"a[{slot[w]}] != {lo_name[w]}", removes[w]) for w in windows)):
        if body:
            lines += [f"        if {test}:", *("    " + line for line in body)]
    lines.append(f"    a[0], a[1], {''.join(f'a[{slot[w]}], ' for w in windows)}= t, hi, "
                 f"{', '.join(lo_name[w] for w in windows)}")
    lines += read
    return lines, len(kept)


def _combos_source(row_columns: Sequence[str], flag_keys: Sequence[Sequence[str]]) -> list[str]:
    """``combos(values)``: each flag's key combination, None where one of its keys is missing."""
    lines = ["def combos(values):"]
    if not flag_keys:
        return [*lines, "    return ()"]
    keys = [n for n in row_columns if any(n in k for k in flag_keys)]
    lines.append(f"    {''.join(f'c_{n}, ' if n in keys else '_, ' for n in row_columns)}= values")
    lines += [f"    p_{n} = {present_source(n)}" for n in keys]
    lines.append("    return (")
    for k in flag_keys:
        present = " and ".join(f"p_{n}" for n in k)
        lines.append(f"        _combo([{', '.join(f'c_{n}' for n in k)}]) if {present} else None,")
    return [*lines, "    )"]


def compile_group(specs: Sequence[Spec], row_columns: Sequence[str], flag_names: Sequence[str],
                  flag_keys: Sequence[Sequence[str]] = ()) -> CompiledGroup:
    """Generate and compile the group's ``contributions``, ``append``, ``evaluate``, ``slide`` and ``combos``
    (``row_columns``: the event values' order, ``flag_names``: the first-seen flags' order, ``flag_keys``: each
    flag's key columns, all of them among ``row_columns``)."""
    columns = _Columns()
    windows = sorted({w for spec in specs for w in spec.windows_us})
    lo_name = {w: f"lo_{w // 1_000_000}s" if w % 1_000_000 == 0 else f"lo_{w}us" for w in windows}
    evaluate = ["def evaluate(times, cols, t):"]
    _bounds(evaluate, windows, lo_name, "    ", "0", lambda k: "0")
    for spec in specs:
        _spec_source(evaluate, spec, columns, [lo_name[w] for w in spec.windows_us])
    slide, n_running = _slide_source(specs, columns, windows, lo_name)
    features = ["    return [", *(f"        f_{name}," for spec in specs for name in spec.names), "    ]"]
    evaluate += features
    slide += features

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

    combos = _combos_source(row_columns, flag_keys)
    source = "\n\n\n".join("\n".join(f) for f in (contributions, append, evaluate, slide, combos)) + "\n"
    namespace = dict(_RUNTIME)
    exec(compile(source, "<stream group plan>", "exec"), namespace)  # built from validated definitions only
    return CompiledGroup(namespace["contributions"], namespace["append"], namespace["evaluate"], namespace["slide"],
                         namespace["combos"], len(columns.expressions), len(windows), n_running, source)
