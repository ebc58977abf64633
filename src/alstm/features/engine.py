"""Evaluate named expressions on a panel the way Qlib does, in one vectorized pass per node.

Qlib computes each expression per instrument over calendar rows ``[start − left, end + right]``
(the expression's window extension), on the instrument's stored series only, casts the result to
float32, cuts it to ``[start, end]`` and keeps the rows inside the market's membership spans. Here
every node runs once over the ``[T, N]`` panel; sub-expressions shared between expressions are
computed once and freed after their last use. Freed temporaries are recycled as the results of
later nodes: a fresh ``[T, N]`` array costs more in page faults than most operators.

Three things keep the work near what the output needs:

- Each column is computed only on the rows its output rows read: the market's rows, widened by
  every window on the way down (path-dependent operators keep Qlib's load start). The panel's
  columns are sorted by their first needed row, so that the kernels' column ranges share a row
  span.
- Statistics of one series and window (Slope/Rsquare/Resi, Max/IdxMax, quantiles …) are computed
  in one kernel pass (the operators' ``batch``).
- The result array is faulted in on a second thread while the data loads (``ResultBuffer``).
"""

from __future__ import annotations

import functools
import gc
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from alstm.data.panel import Panel
from alstm.features import (
    kernels,
    operators,  # noqa: F401  (registers the built-in operators)
)
from alstm.features.operators import EvalContext
from alstm.features.parser import Call, Const, ExpressionError, Field, Node, parse
from alstm.features.registry import ARG_KINDS, get_operator


@dataclass(frozen=True)
class Expr:
    """A parsed, validated expression with Qlib's window extension (rows of history/future)."""

    text: str
    root: Node
    left: int
    right: int
    fields: frozenset[str]
    load_dependent: bool


@dataclass(frozen=True)
class _Info:
    left: int
    right: int
    fields: frozenset[str]
    load_dependent: bool


def compile_expression(text: str) -> Expr:
    """Parse and check one expression: operator names, arity, window and shift arguments."""
    root = parse(text)
    info = _check(root, text)
    return Expr(text, root, info.left, info.right, info.fields, info.load_dependent)


def _check(node: Node, text: str) -> _Info:
    if isinstance(node, Field):
        return _Info(0, 0, frozenset([node.name]), False)
    if isinstance(node, Const):
        return _Info(0, 0, frozenset(), False)
    assert isinstance(node, Call)
    op = get_operator(node.op, text, node.pos)
    if len(node.args) != len(op.signature):
        kinds = ", ".join(ARG_KINDS[k] for k in op.signature)
        raise ExpressionError(
            f"{op.name} takes {len(op.signature)} arguments ({kinds}), got {len(node.args)}",
            text,
            node.pos,
        )
    children: list[_Info] = []
    for kind, arg in zip(op.signature, node.args, strict=True):
        if kind == "x":
            children.append(_check(arg, text))
            continue
        if not isinstance(arg, Const):
            raise ExpressionError(
                f"{op.name}: the {ARG_KINDS[kind]} must be a number", text, arg.pos
            )
        _check_param(op, kind, arg.value, text, arg.pos)
    windows = _window_args(node)
    left, right = op.extent(windows)
    return _Info(
        max((c.left for c in children), default=0) + left,
        max((c.right for c in children), default=0) + right,
        frozenset().union(*(c.fields for c in children)),
        any(c.load_dependent for c in children) or op.depends_on_load_start(windows),
    )


def _check_param(op: Any, kind: str, value: int | float, text: str, pos: int) -> None:
    if kind == "q":
        return
    if kind == "k":
        if not isinstance(value, int):
            raise ExpressionError(
                f"{op.name}: the shift must be an integer, got {value!r}", text, pos
            )
        return
    if kind == "a" and isinstance(value, float) and 0 < value < 1:
        return
    if not isinstance(value, int) or value < 0:
        allowed = "a non-negative integer" + (" or a float in (0, 1)" if kind == "a" else "")
        raise ExpressionError(f"{op.name}: the window must be {allowed}, got {value!r}", text, pos)
    if value == 0 and not op.expanding:
        raise ExpressionError(f"{op.name}: an expanding window (0) is not supported", text, pos)
    if 0 < value < op.min_window:
        raise ExpressionError(
            f"{op.name}: the window must be 0 or at least {op.min_window}, got {value}", text, pos
        )


class _Buffers:
    """Freed ``[T, N]`` float temporaries by dtype, handed out again as results."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.free: dict[np.dtype, list[np.ndarray]] = {}

    def take(self, dtype: Any) -> np.ndarray:
        """A ``[T, N]`` array of ``dtype``: a freed one when there is one."""
        stack = self.free.get(np.dtype(dtype))
        return stack.pop() if stack else np.empty(self.shape, dtype=dtype)

    def give(self, value: Any) -> None:
        """Recycle ``value`` if it is a whole float array of the panel's shape (the caller
        guarantees that nobody else holds it)."""
        if (
            isinstance(value, np.ndarray)
            and value.shape == self.shape
            and value.dtype in (np.float32, np.float64)
            and value.flags.c_contiguous
            and value.flags.owndata
        ):
            self.free.setdefault(value.dtype, []).append(value)


class _Evaluator:
    """Evaluates trees over one panel, sharing sub-expressions between them."""

    def __init__(
        self, panel: Panel, roots: list[tuple[Node, int]], begin: np.ndarray, stop: np.ndarray
    ) -> None:
        self.panel = panel
        self.base_start = np.where(panel.first >= 0, panel.first, panel.shape[0]).astype(np.int64)
        self.uses: Counter[tuple[str, int | None]] = Counter()
        for node, lo in roots:
            self._count(node, lo)
        self.calls, order = self._collect_calls(roots)
        self.rows = self._plan_rows(roots, order, begin, stop)
        self.batches = self._plan_batches()
        self.memo: dict[tuple[str, int | None], tuple[Any, bool]] = {}
        self.buffers = _Buffers(panel.shape)

    def _key(self, node: Node, lo: int) -> tuple[str, int | None]:
        return node.key, (lo if _load_dependent(node) else None)

    def _count(self, node: Node, lo: int) -> None:
        # Mirror the evaluation: a call's operands are evaluated only when the call is first
        # computed (later uses read the memo), so only then do they count as used.
        if isinstance(node, Call):
            key = self._key(node, lo)
            self.uses[key] += 1
            if self.uses[key] == 1:
                for a in node.args:
                    self._count(a, lo)

    def _collect_calls(
        self, roots: list[tuple[Node, int]]
    ) -> tuple[dict[tuple[str, int | None], tuple[Call, int]], list[tuple[str, int | None]]]:
        """Every distinct call of the trees (key → node and load start), and their keys with
        each call's operands before the call."""
        calls: dict[tuple[str, int | None], tuple[Call, int]] = {}
        order: list[tuple[str, int | None]] = []

        def visit(node: Node, lo: int) -> None:
            key = self._key(node, lo) if isinstance(node, Call) else None
            if key is None or key in calls:
                return
            calls[key] = (node, lo)  # type: ignore[assignment]
            for arg in node.args:  # type: ignore[union-attr]
                visit(arg, lo)
            order.append(key)

        for node, lo in roots:
            visit(node, lo)
        return calls, order

    def _plan_rows(
        self,
        roots: list[tuple[Node, int]],
        order: list[tuple[str, int | None]],
        begin: np.ndarray,
        stop: np.ndarray,
    ) -> dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray | None]]:
        """``(ctx.start, ctx.stop)`` of every call, so that each is computed only on the rows its
        consumers read: the roots need rows ``begin[j] .. stop[j] − 1`` of column ``j`` (none
        where ``begin >= stop``), and a local operator needs its operands on its own needed rows
        widened by its window extension. Non-local operators get every row of their operands.
        ``order``: the calls' keys, operands first."""
        T, N = self.panel.shape
        need: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]] = {}

        def widen(key: tuple[str, int | None], b: np.ndarray, e: np.ndarray) -> None:
            old = need.get(key)
            need[key] = (b, e) if old is None else (np.minimum(old[0], b), np.maximum(old[1], e))

        for node, lo in roots:
            if isinstance(node, Call):
                widen(self._key(node, lo), begin, stop)
        plan = {}
        for key in reversed(order):
            node, lo = self.calls[key]
            op = get_operator(node.op)
            b, e = need.pop(key)
            if not op.local:
                start = np.maximum(self.base_start, lo) if key[1] is not None else self.base_start
                ctx_stop = None
                child = (start, np.full(N, T, dtype=np.int64))
            else:
                left, right = op.extent(_window_args(node))
                first = np.maximum(self.base_start, lo) if key[1] is not None else b - left
                empty = b >= e
                start = np.where(empty, T, np.maximum(self.base_start, first))
                ctx_stop = np.where(empty, 0, np.minimum(e + right, T))
                child = (start, ctx_stop)
            plan[key] = (start, ctx_stop)
            for kind, arg in zip(op.signature, node.args, strict=True):
                if kind == "x" and isinstance(arg, Call):
                    widen(self._key(arg, lo), *child)
        return plan

    def _plan_batches(self) -> dict[tuple[str, int | None], list[tuple[str, int | None]]]:
        """Calls computed together, each call's key → its group's keys (groups of two or more):
        operators sharing a batch function, applied to the same series with the same integer
        windows."""
        groups: dict[tuple[Any, ...], list[tuple[str, int | None]]] = {}
        for key, (node, lo) in self.calls.items():
            op = get_operator(node.op)
            if op.batch is None or any(isinstance(w, float) for w in _window_args(node)):
                continue
            shared = tuple(
                self._key(a, lo) if k == "x" else a.value  # type: ignore[attr-defined]
                for k, a in zip(op.signature, node.args, strict=True)
                if k != "q"
            )
            groups.setdefault((op.batch, key[1], shared), []).append(key)
        return {key: group for group in groups.values() if len(group) > 1 for key in group}

    def evaluate(self, node: Node, lo: int) -> tuple[Any, bool]:
        """``(value, owned)`` of ``node`` with loading starting at panel row ``lo``; hand an owned
        value to :meth:`release` once it has been read."""
        return self._eval(node, lo)

    def release(self, value: Any) -> None:
        """Recycle an owned value that is no longer needed."""
        self.buffers.give(value)

    def _eval(self, node: Node, lo: int) -> tuple[Any, bool]:
        """``(value, owned)``: an owned value is a temporary nobody else holds, so a parent may
        write its result into it or recycle it."""
        if isinstance(node, Const):
            return node.value, False
        if isinstance(node, Field):
            return self.panel[node.name], False
        assert isinstance(node, Call)
        key = self._key(node, lo)
        value, temporary = self.memo[key] if key in self.memo else self._compute(node, key, lo)
        self.uses[key] -= 1
        if self.uses[key] > 0:
            self.memo[key] = (value, temporary)
            return value, False
        self.memo.pop(key, None)
        return value, temporary

    def _compute(self, node: Call, key: tuple[str, int | None], lo: int) -> tuple[Any, bool]:
        """``(value, temporary)`` of one call; its owned operands are recycled afterwards."""
        op = get_operator(node.op)
        evaluated = [
            self._eval(a, lo) if k == "x" else (a.value, False)  # type: ignore[attr-defined]
            for k, a in zip(op.signature, node.args, strict=True)
        ]
        if key in self.batches:
            return self._compute_batch(node, key, evaluated)
        args = [v for v, _ in evaluated]
        ufunc = getattr(op.func, "ufunc", None)
        out = self._elementwise_out(evaluated) if ufunc is not None else None
        if out is not None:
            value = kernels.apply_ufunc(ufunc, args, out)
            temporary = True
        else:
            start, stop = self.rows[key]
            value = op.func(EvalContext(self.panel.shape, start, self.buffers.take, stop), *args)
            # An operator may hand back an operand or a view of one: that is not a temporary.
            temporary = (
                isinstance(value, np.ndarray)
                and value.flags.owndata
                and not any(value is arg for arg in args)
            )
        for arg, owned in evaluated:
            if owned and arg is not value:
                self.buffers.give(arg)
        return value, temporary

    def _compute_batch(
        self, node: Call, key: tuple[str, int | None], evaluated: list[tuple[Any, bool]]
    ) -> tuple[Any, bool]:
        """Compute ``node`` and the rest of its batch in one pass: ``node``'s result is returned,
        the others wait in the memo. Their operands are read here, as their own computation
        would have (the same values as ``node``'s)."""
        op = get_operator(node.op)
        group = [key, *(k for k in self.batches[key] if k != key)]
        owned = [v for v, o in evaluated if o]
        members = []
        for k in group:
            other, lo = self.calls[k]
            sig = get_operator(other.op).signature
            if k != key:
                for kind, a in zip(sig, other.args, strict=True):
                    if kind == "x":
                        value, mine = self._eval(a, lo)
                        owned += [value] if mine else []
            q = tuple(a.value for kind, a in zip(sig, other.args, strict=True) if kind == "q")  # type: ignore[attr-defined]
            members.append((other.op, q))
        starts = [self.rows[k][0] for k in group]
        stops = [self.rows[k][1] for k in group]
        start = np.minimum.reduce(starts)
        stop = None if any(e is None for e in stops) else np.maximum.reduce(stops)
        shared = [v for k, (v, _) in zip(op.signature, evaluated, strict=True) if k != "q"]
        ctx = EvalContext(self.panel.shape, start, self.buffers.take, stop)
        values = op.batch(ctx, *shared, members)  # type: ignore[misc]
        for k, value in zip(group[1:], values[1:], strict=True):
            self.memo[k] = (value, True)
        for k in group:
            del self.batches[k]
        released: set[int] = set()
        for value in owned:
            if id(value) not in released and not any(value is v for v in values):
                released.add(id(value))
                self.buffers.give(value)
        return values[0], True

    def _elementwise_out(self, evaluated: list[tuple[Any, bool]]) -> np.ndarray | None:
        """Where an elementwise node's result goes: an owned operand of the result's dtype, else
        a recycled array; None unless the operands are numbers and panel-shaped arrays."""
        arrays = [v for v, _ in evaluated if isinstance(v, np.ndarray)]
        if not arrays or any(a.shape != self.panel.shape for a in arrays):
            return None
        dtype = np.result_type(*(v for v, _ in evaluated))
        for value, owned in evaluated:
            if owned and isinstance(value, np.ndarray) and value.dtype == dtype:
                return value
        if dtype not in (np.float32, np.float64):
            return None
        return self.buffers.take(dtype)


def _schedule(ev: _Evaluator, roots: list[tuple[Node, int]]) -> list[int]:
    """An evaluation order (indices of ``roots``) that keeps few shared sub-expressions alive:
    greedily the expression that finishes the most live shared ones and starts the fewest new
    ones, ties in the given order. Results do not depend on the order; peak memory does (and with
    it the page faults of fresh arrays). A batch (computed in one pass) counts as one shared
    sub-expression of the expressions that use its members."""
    keys: list[set[Any]] = []
    for node, lo in roots:
        calls = _call_keys(ev, node, lo)
        keys.append(calls | {tuple(ev.batches[k]) for k in calls if k in ev.batches})
    remaining = Counter(k for ks in keys for k in ks)
    shared = [{k for k in ks if remaining[k] > 1} for ks in keys]
    live: set[Any] = set()
    todo = list(range(len(roots)))
    order = []
    while todo:

        def score(i: int) -> int:
            return sum((1 if remaining[k] == 1 else 0) if k in live else -1 for k in shared[i])

        best = max(todo, key=lambda i: (score(i), -i))
        todo.remove(best)
        order.append(best)
        for k in shared[best]:
            remaining[k] -= 1
            if remaining[k]:
                live.add(k)
            else:
                live.discard(k)
    return order


def _call_keys(ev: _Evaluator, node: Node, lo: int) -> set[tuple[str, int | None]]:
    """The memo keys of every call in a tree."""
    if not isinstance(node, Call):
        return set()
    return {ev._key(node, lo)}.union(*(_call_keys(ev, a, lo) for a in node.args))


@cache
def _load_dependent(node: Node) -> bool:
    """Whether a node's value depends on where loading starts (EMA, expanding windows …)."""
    if not isinstance(node, Call):
        return False
    windows = _window_args(node)
    return get_operator(node.op).depends_on_load_start(windows) or any(
        _load_dependent(a) for a in node.args
    )


def _window_args(node: Call) -> list[int | float]:
    """The window and shift arguments of a call (its ``n``, ``a`` and ``k`` parameters)."""
    op = get_operator(node.op)
    return [a.value for k, a in zip(op.signature, node.args, strict=True) if k in "nak"]  # type: ignore[attr-defined]


F = TypeVar("F", bound=Callable[..., Any])


def gc_paused(func: F) -> F:
    """Run ``func`` with Python's cyclic garbage collector paused (and restored after). Factor
    computation allocates many short-lived objects that reference counting frees anyway (spans,
    thread-pool futures); each collection they trigger walks every object of the interpreter,
    tens of milliseconds with pandas and numba loaded."""

    @functools.wraps(func)
    def paused(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused  # type: ignore[return-value]


class ResultBuffer:
    """The float32 ``[rows, columns]`` result array of :func:`evaluate`, allocated ahead and
    touched on a background thread: the first touch of fresh memory costs as much as a good
    share of the computation, and while the data loads one core is idle anyway."""

    def __init__(self, rows: int, columns: int) -> None:
        self._array = np.empty((rows, columns), dtype=np.float32, order="F")
        self._touch = threading.Thread(target=self._array.fill, args=(0.0,), daemon=True)
        self._touch.start()

    def take(self, shape: tuple[int, int]) -> np.ndarray:
        """The touched array's first ``shape[0]`` rows if it has that many (and the columns);
        else a new array."""
        self._touch.join()
        if self._array.shape[0] >= shape[0] and self._array.shape[1] == shape[1]:
            return self._array[: shape[0]]
        return np.empty(shape, dtype=np.float32, order="F")


@gc_paused
def evaluate(
    panel: Panel,
    exprs: dict[str, str | Expr],
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    market: str | None = None,
    *,
    buffer: ResultBuffer | None = None,
) -> pd.DataFrame:
    """Frame indexed ``(datetime, instrument)`` with one float32 column per named expression.

    ``panel`` must hold every field used, from far enough back and forward to cover the
    expressions' window extensions (rows it lacks are treated as not stored, as Qlib does at the
    calendar's ends). Rows: inside each instrument's stored span, within ``[start, end]``, and on
    membership days of ``market`` when given. ``buffer``: where the result goes, if its shape
    fits.
    """
    compiled = {n: e if isinstance(e, Expr) else compile_expression(e) for n, e in exprs.items()}
    missing = set().union(*(e.fields for e in compiled.values())) - set(panel.fields)
    if missing:
        raise ExpressionError(
            f"fields {sorted(missing)} are not loaded; loaded: {sorted(panel.fields)}"
        )
    cal = panel.calendar
    s = int(cal.searchsorted(pd.Timestamp(start), side="left"))
    e = int(cal.searchsorted(pd.Timestamp(end), side="right")) - 1
    if s > e:
        raise ExpressionError(f"no trading day in [{start}, {end}] in the loaded panel")
    rows = panel.rows(market)[s : e + 1]
    t_idx, n_idx = np.nonzero(rows)
    index = pd.MultiIndex.from_arrays(
        [cal[s : e + 1][t_idx], np.asarray(panel.instruments, dtype=object)[n_idx]],
        names=["datetime", "instrument"],
    )
    # Each column is computed only around its output rows. Columns with similar rows go next to
    # each other, so that the kernels' column ranges share their row spans.
    has = rows.any(axis=0)
    begin = np.where(has, s + rows.argmax(axis=0), panel.shape[0]).astype(np.int64)
    stop = np.where(has, s + len(rows) - rows[::-1].argmax(axis=0), 0).astype(np.int64)
    order = np.lexsort((stop, begin))
    used = set().union(*(c.fields for c in compiled.values()))
    panel = Panel(
        cal,
        tuple(np.asarray(panel.instruments, dtype=object)[order]),
        {f: np.take(panel[f], order, axis=1) for f in used},
        panel.first[order],
        panel.last[order],
    )
    los = [max(s - c.left, 0) for c in compiled.values()]
    roots = [(c.root, lo) for c, lo in zip(compiled.values(), los, strict=True)]
    ev = _Evaluator(panel, roots, begin[order], stop[order])
    flat = (t_idx + s) * panel.shape[1] + np.argsort(order)[n_idx]
    pos = np.argsort(flat)  # copy each result out in the order of its rows in memory
    index_type = np.int32 if panel.shape[0] * panel.shape[1] < 2**31 else np.int64
    flat, pos = flat[pos].astype(index_type), pos.astype(index_type)
    shape = (len(t_idx), len(compiled))
    out = np.empty(shape, np.float32, order="F") if buffer is None else buffer.take(shape)
    for j in _schedule(ev, roots):
        value, owned = ev.evaluate(*roots[j])
        value = np.asarray(value)
        if value.ndim == 0:
            with np.errstate(all="ignore"):  # float64 → float32 overflows to ±inf, as in Qlib
                out[:, j] = value
            continue
        if value.dtype not in (np.float32, np.float64):
            value = value.astype(np.float64)  # booleans become 0/1
        kernels.gather(value.reshape(-1), flat, out[:, j], pos)  # float64 → float32 as in Qlib
        if owned:
            ev.release(value)
    return pd.DataFrame(out, index=index, columns=list(compiled), copy=False)
