"""Evaluate a CEL syntax tree over JSON-like values, with CEL's semantics.

Contract: `evaluate(node, bindings)` returns a CEL value or raises `CelError` (never
another exception for well-formed trees). Values are Python ones: bool, int (int64
range checked), float, str, bytes, None, list, dict, plus `cel_lib.Duration` / `Url`.
`&&`/`||` absorb errors the way CEL does (`false && error` is false, either order), and
`all`/`exists` let a decisive element win over an erroring one.
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation.cel_ast import (
    Binary, Call, Comprehension, Cond, Has, Ident, Index, ListLit, Lit, MapLit, Node, Select, Unary,
)
from isthmus.shared.config.validation.cel_lib import FUNCTIONS, CelError, Duration, check_int, type_name

__all__ = ["CelError", "FUNCTIONS", "equal", "evaluate", "type_name"]

_NUMERIC = ("int", "double")


def equal(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality: values of different types are simply unequal."""
    ta, tb = type_name(a), type_name(b)
    if ta in _NUMERIC and tb in _NUMERIC:
        return a == b
    if ta != tb:
        return False
    if ta == "list":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if ta == "map":
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


def _compare(op: str, a: Any, b: Any) -> bool:
    ta, tb = type_name(a), type_name(b)
    comparable = (ta in _NUMERIC and tb in _NUMERIC) or (
        ta == tb and ta in ("string", "bytes", "bool", "google.protobuf.Duration"))
    if not comparable:
        raise CelError(f"no such overload: {ta} {op} {tb}")
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _arith(op: str, a: Any, b: Any) -> Any:
    ta, tb = type_name(a), type_name(b)
    if ta == tb == "int":
        if op in ("/", "%") and b == 0:
            raise CelError("division by zero" if op == "/" else "modulus by zero")
        if op == "/":
            q = abs(a) // abs(b)
            return check_int(q if (a >= 0) == (b >= 0) else -q)
        if op == "%":
            r = abs(a) % abs(b)  # truncated: the sign follows the dividend, as in Go
            return r if a >= 0 else -r
        return check_int({"+": a + b, "-": a - b, "*": a * b}[op])
    if ta == tb == "double":
        if op == "%":
            raise CelError("no such overload: double % double")
        if op == "/":
            return a / b if b != 0 else (float("nan") if a == 0 else float("inf") * (1 if a > 0 else -1))
        return {"+": a + b, "-": a - b, "*": a * b}[op]
    if op == "+" and ta == tb and ta in ("string", "bytes"):
        return a + b
    if op == "+" and ta == tb == "list":
        return list(a) + list(b)
    if op in "+-" and ta == tb == "google.protobuf.Duration":
        return Duration.checked(a.nanos + b.nanos if op == "+" else a.nanos - b.nanos)
    raise CelError(f"no such overload: {ta} {op} {tb}")


def _bool(value: Any, what: str) -> bool:
    if value is True or value is False:
        return value
    raise CelError(f"{what} must be a bool (got {type_name(value)})")


def _select(obj: Any, field: str) -> Any:
    if isinstance(obj, dict):
        if field in obj:
            return obj[field]
        raise CelError(f"no such key: {field}")
    raise CelError(f"type {type_name(obj)} has no field {field!r}")


def _index(obj: Any, key: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        if type_name(key) == "double" and key == int(key):
            key = int(key)
        if type_name(key) != "int":
            raise CelError(f"no such overload: list[{type_name(key)}]")
        if not 0 <= key < len(obj):
            raise CelError(f"index out of range: {key}")
        return obj[key]
    if isinstance(obj, dict):
        for k in obj:
            if equal(k, key):
                return obj[k]
        raise CelError(f"no such key: {key!r}")
    raise CelError(f"no such overload: {type_name(obj)}[{type_name(key)}]")


def _in(item: Any, container: Any) -> bool:
    if isinstance(container, (list, tuple)):
        return any(equal(item, x) for x in container)
    if isinstance(container, dict):
        return any(equal(item, k) for k in container)
    raise CelError(f"no such overload: {type_name(item)} in {type_name(container)}")


def _try(node: Node, env: dict[str, Any]) -> tuple[Any, CelError | None]:
    try:
        return evaluate(node, env), None
    except CelError as exc:
        return None, exc


def _logic(op: str, left: Node, right: Node, env: dict[str, Any]) -> bool:
    """`&&` / `||`: a decisive side wins even when the other errs (CEL commutativity)."""
    decisive = op == "||"  # true decides ||, false decides &&
    lv, lerr = _try(left, env)
    if lerr is None:
        lv = _bool(lv, f"left operand of {op}")
        if lv is decisive:
            return decisive
    rv, rerr = _try(right, env)
    if rerr is None:
        rv = _bool(rv, f"right operand of {op}")
        if rv is decisive:
            return decisive
    if lerr is not None:
        raise lerr
    if rerr is not None:
        raise rerr
    return not decisive


def _comprehension(node: Comprehension, env: dict[str, Any]) -> Any:
    rng = evaluate(node.range, env)
    if isinstance(rng, (list, tuple)):
        elements = list(rng)
    elif isinstance(rng, dict):
        elements = list(rng.keys())
    else:
        raise CelError(f"{node.kind}() needs a list or map (got {type_name(rng)})")
    scope = dict(env)

    def body(expr: Node, element: Any) -> Any:
        scope[node.var] = element
        return evaluate(expr, scope)

    if node.kind in ("all", "exists"):
        decisive = node.kind == "exists"
        first_error: CelError | None = None
        for el in elements:
            try:
                if _bool(body(node.body, el), f"{node.kind}() predicate") is decisive:
                    return decisive
            except CelError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return not decisive
    if node.kind == "exists_one":
        hits = sum(1 for el in elements if _bool(body(node.body, el), "exists_one() predicate"))
        return hits == 1
    if node.kind == "filter":
        return [el for el in elements if _bool(body(node.body, el), "filter() predicate")]
    out = []  # map, with an optional filter predicate
    for el in elements:
        if node.pred is None or _bool(body(node.pred, el), "map() predicate"):
            out.append(body(node.body, el))
    return out


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    match node:
        case Lit(value):
            return value
        case Ident(name):
            if name in env:
                return env[name]
            raise CelError(f"undeclared reference to {name!r}")
        case Select(operand, field):
            return _select(evaluate(operand, env), field)
        case Has(operand, field):
            obj = evaluate(operand, env)
            if isinstance(obj, dict):
                return field in obj
            raise CelError(f"has() needs a map or object (got {type_name(obj)})")
        case Index(operand, index):
            return _index(evaluate(operand, env), evaluate(index, env))
        case Unary("!", operand):
            return not _bool(evaluate(operand, env), "operand of !")
        case Unary("-", operand):
            value = evaluate(operand, env)
            if type_name(value) == "int":
                return check_int(-value)
            if type_name(value) == "double":
                return -value
            if isinstance(value, Duration):
                return Duration.checked(-value.nanos)
            raise CelError(f"no such overload: -{type_name(value)}")
        case Binary("&&" | "||" as op, left, right):
            return _logic(op, left, right, env)
        case Binary(op, left, right):
            a, b = evaluate(left, env), evaluate(right, env)
            if op == "==":
                return equal(a, b)
            if op == "!=":
                return not equal(a, b)
            if op == "in":
                return _in(a, b)
            if op in ("<", "<=", ">", ">="):
                return _compare(op, a, b)
            return _arith(op, a, b)
        case Cond(cond, then, otherwise):
            chosen = then if _bool(evaluate(cond, env), "condition of ?:") else otherwise
            return evaluate(chosen, env)
        case ListLit(items):
            return [evaluate(i, env) for i in items]
        case MapLit(entries):
            out: dict[Any, Any] = {}
            for k, v in entries:
                key = evaluate(k, env)
                if type_name(key) not in ("string", "int", "bool"):
                    raise CelError(f"unsupported map key type {type_name(key)}")
                if key in out:
                    raise CelError(f"duplicate map key {key!r}")
                out[key] = evaluate(v, env)
            return out
        case Comprehension():
            return _comprehension(node, env)
        case Call(name, target, args):
            fn = FUNCTIONS.get(name)
            if fn is None:
                raise CelError(f"undeclared function {name!r}")
            values = [evaluate(a, env) for a in args]
            if target is not None:
                values.insert(0, evaluate(target, env))
            return fn(name, target is not None, values)
    raise CelError(f"cannot evaluate {type(node).__name__}")
