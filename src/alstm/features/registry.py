"""The operator registry: every name an expression can call, registered with a decorator."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alstm.features.parser import ExpressionError

#: One letter per argument: ``x`` a series (or number), ``n`` a rolling window (int ≥ 0; 0 is an
#: expanding window), ``a`` a rolling window that may also be a float in (0, 1) (an
#: exponentially weighted mean with that smoothing), ``k`` a shift (any int), ``q`` a number.
ARG_KINDS = {"x": "series", "n": "window", "a": "window", "k": "shift", "q": "number"}


@dataclass(frozen=True)
class Operator:
    """A registered operator: ``func(ctx, *args)`` computes it on ``[T, N]`` arrays."""

    name: str
    signature: str
    func: Callable[..., Any]
    path_dependent: bool = False
    min_window: int = 0
    expanding: bool = True
    local: bool = False
    batch: Callable[..., list[Any]] | None = None

    @property
    def window_kinds(self) -> str:
        """The signature letters of window and shift arguments, in order."""
        return "".join(k for k in self.signature if k in "nak")

    def extent(self, windows: list[int | float]) -> tuple[int, int]:
        """Rows of history and of future this operator adds to its operands' (as Qlib counts)."""
        left = right = 0
        for kind, p in zip(self.window_kinds, windows, strict=True):
            if kind == "k":
                left, right = left + max(int(p), 0), right + max(-int(p), 0)
            elif isinstance(p, float):
                left += max(int(math.log(1e-6) / math.log(1 - p)) - 1, 0)
            elif p > 0:
                left += p - 1
        return left, right

    def depends_on_load_start(self, windows: list[int | float]) -> bool:
        """True when the result depends on where loading starts, not only on the window."""
        return self.path_dependent or any(p == 0 or isinstance(p, float) for p in windows)


_OPERATORS: dict[str, Operator] = {}
_BUILTIN: set[str] = set()


def register_operator(
    name: str,
    signature: str,
    *,
    path_dependent: bool = False,
    min_window: int = 0,
    expanding: bool = True,
    local: bool = False,
    batch: Callable[..., list[Any]] | None = None,
    overwrite: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(ctx, *args)`` as the expression operator ``name``.

    ``ctx.start`` is the ``int64 [N]`` first existing row of each column; series arguments are
    ``[T, N]`` arrays or Python numbers. ``path_dependent`` operators give results that depend on
    the row where loading starts (Qlib loads ``[start − window extension, end]`` per expression),
    so they are evaluated per expression rather than shared. A window must be 0 (expanding, if
    ``expanding``) or at least ``min_window``. A ``local`` operator computes each result row from
    operand rows within its window extension (:meth:`Operator.extent`) and honours ``ctx.stop``
    (rows from ``ctx.stop[j]`` on are not needed): the engine then computes its operands only on
    the rows its needed results read; any other operator gets operands valid on every row.
    Calls of operators that share a ``batch`` function, with the same series and integer window
    arguments, are computed together in one pass: ``batch(ctx, *shared, members)`` gets the
    arguments other than the ``q`` ones and ``members``, a list of ``(operator name, its q
    arguments)``, and returns one result per member. Built-in names cannot be shadowed unless
    ``overwrite=True`` (which warns).

    >>> @register_operator("Double", "x")            # doctest: +SKIP
    ... def double(ctx, x):
    ...     return x * 2
    """
    if any(c not in ARG_KINDS for c in signature):
        raise ValueError(f"signature {signature!r}: letters must be among {sorted(ARG_KINDS)}")

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in _OPERATORS:
            if name in _BUILTIN and not overwrite:
                raise ValueError(
                    f"operator {name!r} is built in; pass overwrite=True to replace it"
                )
            warnings.warn(f"operator {name!r} is being replaced", stacklevel=2)
        _OPERATORS[name] = Operator(
            name, signature, func, path_dependent, min_window, expanding, local, batch
        )
        return func

    return deco


def mark_builtin() -> None:
    """Freeze the names registered so far as built-ins (called once by ``operators``)."""
    _BUILTIN.update(_OPERATORS)


def get_operator(name: str, text: str = "", pos: int | None = None) -> Operator:
    """The operator registered as ``name``; the error lists the known names."""
    try:
        return _OPERATORS[name]
    except KeyError:
        known = ", ".join(sorted(_OPERATORS))
        raise ExpressionError(
            f"unknown operator {name!r}; known operators: {known}", text, pos
        ) from None


def operator_names() -> list[str]:
    """Sorted names of every registered operator."""
    return sorted(_OPERATORS)
