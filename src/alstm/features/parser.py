"""Parse Qlib expression strings (``Mean($close, 5) / $close``) into a small tree.

Precedence follows Python's, because Qlib evaluates its expressions as Python code: comparisons
bind loosest, then ``|``, then ``&``, then ``+ -``, then ``* /``, then unary minus, then calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FIELD = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
PUNCT = ("<=", ">=", "==", "!=", "+", "-", "*", "/", "<", ">", "&", "|", "(", ")", ",")
INFIX = {
    "+": "Add", "-": "Sub", "*": "Mul", "/": "Div",
    ">": "Gt", ">=": "Ge", "<": "Lt", "<=": "Le", "==": "Eq", "!=": "Ne",
    "&": "And", "|": "Or",
}  # fmt: skip
LEVELS: tuple[tuple[str, ...], ...] = (
    ("<", ">", "<=", ">=", "==", "!="),
    ("|",),
    ("&",),
    ("+", "-"),
    ("*", "/"),
)


class ExpressionError(ValueError):
    """An expression string that cannot be parsed or evaluated; points at the position."""

    def __init__(self, message: str, text: str = "", pos: int | None = None) -> None:
        if text and pos is not None:
            message = f"{message}\n  {text}\n  {' ' * pos}^ (position {pos})"
        elif text:
            message = f"{message}\n  in {text!r}"
        super().__init__(message)


@dataclass(frozen=True)
class Node:
    """Base of the expression tree; ``key`` is a canonical string used for caching."""

    pos: int

    @property
    def key(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Field(Node):
    """A stored field, ``$close``."""

    name: str

    @property
    def key(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True)
class Const(Node):
    """A numeric constant (int or float, as written)."""

    value: int | float

    @property
    def key(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Call(Node):
    """An operator applied to arguments, ``Mean($close, 5)``; infix operators become calls."""

    op: str
    args: tuple[Node, ...]

    @property
    def key(self) -> str:
        return f"{self.op}({','.join(a.key for a in self.args)})"


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """``(kind, value, position)`` tokens; kinds: num, name, field, op."""
    tokens: list[tuple[str, str, int]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        for kind, pattern in (("field", FIELD), ("num", NUMBER), ("name", NAME)):
            m = pattern.match(text, i)
            if m:
                tokens.append((kind, m.group(), i))
                i = m.end()
                break
        else:
            for p in PUNCT:
                if text.startswith(p, i):
                    tokens.append(("op", p, i))
                    i += len(p)
                    break
            else:
                raise ExpressionError(f"unexpected character {c!r}", text, i)
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def error(self, message: str, pos: int | None = None) -> ExpressionError:
        if pos is None:
            tok = self.peek()
            pos = tok[2] if tok else len(self.text)
        return ExpressionError(message, self.text, pos)

    def expect(self, value: str) -> None:
        tok = self.peek()
        if tok is None or tok[1] != value:
            found = repr(tok[1]) if tok else "end of expression"
            raise self.error(f"expected {value!r}, found {found}")
        self.i += 1

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("empty expression", self.text, 0)
        node = self.binary(0)
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def binary(self, level: int) -> Node:
        if level == len(LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in LEVELS[level]:
            self.i += 1
            right = self.binary(level + 1)
            left = Call(tok[2], INFIX[tok[1]], (left, right))
            if level == 0 and (nxt := self.peek()) is not None and nxt[1] in LEVELS[0]:
                raise self.error(
                    "chained comparison: & and | bind tighter than comparisons (as in Python), "
                    "so write (a > b) & (c < d)"
                )
        return left

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok[1] in ("-", "+"):
            self.i += 1
            operand = self.unary()
            if tok[1] == "+":
                return operand
            if isinstance(operand, Const):
                return Const(tok[2], -operand.value)
            return Call(tok[2], "Sub", (Const(tok[2], 0), operand))
        return self.atom()

    def atom(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error("expression ends too early")
        kind, value, pos = tok
        self.i += 1
        if kind == "num":
            is_float = any(c in value for c in ".eE")
            return Const(pos, float(value) if is_float else int(value))
        if kind == "field":
            return Field(pos, value[1:])
        if kind == "name":
            self.expect("(")
            args: list[Node] = []
            if self.peek() is not None and self.peek()[1] != ")":  # type: ignore[index]
                args.append(self.binary(0))
                while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                    self.i += 1
                    args.append(self.binary(0))
            self.expect(")")
            return Call(pos, value, tuple(args))
        if value == "(":
            node = self.binary(0)
            self.expect(")")
            return node
        raise ExpressionError(f"unexpected {value!r}", self.text, pos)


def parse(text: str) -> Node:
    """Parse one expression string into a tree of :class:`Field`, :class:`Const` and :class:`Call`.

    >>> parse("Mean($close, 5) / $close").key
    'Div(Mean($close,5),$close)'
    """
    return _Parser(text).parse()
