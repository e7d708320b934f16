"""The CEL syntax tree: frozen nodes built by `cel._Parser`, walked by `cel_eval.evaluate`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Node:
    pass


@dataclass(frozen=True)
class Lit(Node):
    value: Any


@dataclass(frozen=True)
class Ident(Node):
    name: str


@dataclass(frozen=True)
class Select(Node):
    operand: Node
    field: str


@dataclass(frozen=True)
class Has(Node):
    """`has(operand.field)`: presence test, never an error for a missing field."""

    operand: Node
    field: str


@dataclass(frozen=True)
class Index(Node):
    operand: Node
    index: Node


@dataclass(frozen=True)
class Call(Node):
    """`name(args)` when target is None, else `target.name(args)`."""

    name: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "!" or "-"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Cond(Node):
    cond: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class MapLit(Node):
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True)
class Comprehension(Node):
    """`range.kind(var, body)`; for `map(var, pred, body)` pred filters first."""

    kind: str  # all | exists | exists_one | map | filter
    range: Node
    var: str
    body: Node
    pred: Node | None = None
