"""A small CEL (Common Expression Language) for CRD `x-kubernetes-validations` rules.

Contract: `compile_rule(text)` parses one rule once (cached) into a `Program`, or raises
`CelSyntaxError`; `Program.check(self_value)` returns None when the rule holds, "false"
when it evaluates to false, or a short reason when evaluation failed (no such key,
bad duration, ...). It never raises on any JSON-like value. Transition rules (those
naming `oldSelf`) pass, since Isthmus only validates creates.

Covered: literals (int, uint, double, string with both quotes / triple quotes / raw /
escapes, bytes, bool, null, lists, maps), `?:`, `||`, `&&`, `!`, unary `-`, relations,
`in`, `+ - * / %`, field selection, indexing, `has()`, the `all`/`exists`/`exists_one`/
`map`/`filter` macros, and the functions of `cel_eval.FUNCTIONS` (size, contains,
startsWith, endsWith, matches, substring, int, string, double, duration, url, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from isthmus.shared.config.validation import cel_eval
from isthmus.shared.config.validation.cel_ast import (
    Binary, Call, Comprehension, Cond, Has, Ident, Index, ListLit, Lit, MapLit, Node, Select, Unary,
)

__all__ = ["CelSyntaxError", "Program", "compile_rule"]


class CelSyntaxError(ValueError):
    """A rule that is not CEL this interpreter understands (position included)."""


@dataclass(frozen=True)
class Token:
    kind: str  # "int" "uint" "double" "string" "bytes" "ident" "op" "eof"
    value: Any
    pos: int


_OPS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "?", ":", ".", ",", "(", ")",
        "[", "]", "{", "}", "+", "-", "*", "/", "%")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}


def _unescape(body: str, pos: int) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise CelSyntaxError(f"dangling backslash in string at {pos}")
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e in "xXuU" or e in "0123":
            width = {"x": 2, "X": 2, "u": 4, "U": 8}.get(e, 3)
            digits = body[i + 2:i + 2 + width] if e in "xXuU" else body[i + 1:i + 4]
            base = 8 if e in "0123" else 16
            try:
                if len(digits) != width:
                    raise ValueError
                out.append(chr(int(digits, base)))
            except ValueError:
                raise CelSyntaxError(f"bad escape \\{e} in string at {pos}") from None
            i += (2 + width) if e in "xXuU" else 4
        else:
            raise CelSyntaxError(f"unknown escape \\{e} in string at {pos}")
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("//", i):  # comment to end of line
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        start = i
        # string / bytes literal with optional r/b prefixes
        j = i
        while j < n and j - i < 2 and text[j] in "rRbB":
            j += 1
        if j < n and text[j] in "'\"":
            prefix = text[i:j].lower()
            quote = text[j] * 3 if text.startswith(text[j] * 3, j) else text[j]
            k = j + len(quote)
            while True:
                if k >= n:
                    raise CelSyntaxError(f"unterminated string at {start}")
                if text.startswith(quote, k):
                    break
                if text[k] == "\n" and len(quote) == 1:
                    raise CelSyntaxError(f"newline in string at {start}")
                k += 2 if (text[k] == "\\" and "r" not in prefix) else 1
            body = text[j + len(quote):k]
            value = body if "r" in prefix else _unescape(body, start)
            if "b" in prefix:
                toks.append(Token("bytes", value.encode("utf-8", "surrogatepass"), start))
            else:
                toks.append(Token("string", value, start))
            i = k + len(quote)
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            i = _number(text, i, toks)
            continue
        if c.isalpha() or c == "_":
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            toks.append(Token("ident", text[start:i], start))
            continue
        for op in _OPS:
            if text.startswith(op, i):
                toks.append(Token("op", op, start))
                i += len(op)
                break
        else:
            raise CelSyntaxError(f"unexpected character {c!r} at {i}")
    toks.append(Token("eof", None, n))
    return toks


def _number(text: str, i: int, toks: list[Token]) -> int:
    start, n = i, len(text)
    if text.startswith(("0x", "0X"), i):
        i += 2
        while i < n and text[i] in "0123456789abcdefABCDEF":
            i += 1
        value = int(text[start:i], 16)
    else:
        while i < n and text[i].isdigit():
            i += 1
        is_double = False
        if i + 1 < n and text[i] == "." and text[i + 1].isdigit():
            is_double = True
            i += 1
            while i < n and text[i].isdigit():
                i += 1
        if i < n and text[i] in "eE":
            j = i + 1 + (i + 1 < n and text[i + 1] in "+-")
            if j < n and text[j].isdigit():
                is_double, i = True, j
                while i < n and text[i].isdigit():
                    i += 1
        if is_double:
            toks.append(Token("double", float(text[start:i]), start))
            return i
        value = int(text[start:i])
    if i < n and text[i] in "uU":
        toks.append(Token("uint", value, start))
        return i + 1
    toks.append(Token("int", value, start))
    return i


# Binding powers (higher binds tighter); `?:` is handled at the lowest level.
_BINARY = {"||": 2, "&&": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4,
           "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, op: str) -> bool:
        tok = self.peek()
        if tok.kind == "op" and tok.value == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            tok = self.peek()
            got = "end of rule" if tok.kind == "eof" else repr(tok.value)
            raise CelSyntaxError(f"expected {op!r} at {tok.pos}, got {got}")

    def parse(self) -> Node:
        node = self.expr()
        if self.peek().kind != "eof":
            tok = self.peek()
            raise CelSyntaxError(f"unexpected {tok.value!r} at {tok.pos}")
        return node

    def expr(self) -> Node:
        cond = self.binary(2)
        if self.accept("?"):
            then = self.binary(2)
            self.expect(":")
            return Cond(cond, then, self.expr())
        return cond

    def _binop(self) -> str | None:
        tok = self.peek()
        if tok.kind == "op" and tok.value in _BINARY:
            return tok.value
        if tok.kind == "ident" and tok.value == "in":
            return "in"
        return None

    def binary(self, min_bp: int) -> Node:
        left = self.unary()
        while (op := self._binop()) is not None and _BINARY[op] >= min_bp:
            self.next()
            left = Binary(op, left, self.binary(_BINARY[op] + 1))
        return left

    def unary(self) -> Node:
        if self.accept("!"):
            return Unary("!", self.unary())
        if self.accept("-"):
            tok = self.peek()
            if tok.kind in ("int", "double") and not self._followed_by_member():
                self.next()
                if tok.kind == "int" and tok.value > 2**63:
                    raise CelSyntaxError(f"integer literal out of range at {tok.pos}")
                return Lit(-tok.value)
            return Unary("-", self.unary())
        return self.member()

    def _followed_by_member(self) -> bool:
        nxt = self.toks[self.i + 1]
        return nxt.kind == "op" and nxt.value in (".", "[")

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                tok = self.next()
                if tok.kind != "ident":
                    raise CelSyntaxError(f"expected a field name after '.' at {tok.pos}")
                if self.accept("("):
                    args = self.args(")")
                    node = self._method(node, tok.value, args, tok.pos)
                else:
                    node = Select(node, tok.value)
            elif self.accept("["):
                index = self.expr()
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def _method(self, target: Node, name: str, args: list[Node], pos: int) -> Node:
        if name in _MACROS and args and isinstance(args[0], Ident) and len(args) in (2, 3):
            if len(args) == 3 and name != "map":
                raise CelSyntaxError(f"{name}() takes a variable and one expression at {pos}")
            body = args[-1]
            pred = args[1] if len(args) == 3 else None
            return Comprehension(name, target, args[0].name, body, pred)
        return Call(name, target, tuple(args))

    def args(self, close: str) -> list[Node]:
        out: list[Node] = []
        if self.accept(close):
            return out
        while True:
            out.append(self.expr())
            if self.accept(close):
                return out
            self.expect(",")

    def primary(self) -> Node:
        tok = self.next()
        if tok.kind in ("int", "uint", "double", "string", "bytes"):
            if tok.kind in ("int", "uint") and tok.value > (2**63 - 1 if tok.kind == "int" else 2**64 - 1):
                raise CelSyntaxError(f"integer literal out of range at {tok.pos}")
            return Lit(tok.value)
        if tok.kind == "ident":
            if tok.value in ("true", "false"):
                return Lit(tok.value == "true")
            if tok.value == "null":
                return Lit(None)
            if self.accept("("):
                args = self.args(")")
                if tok.value == "has":
                    if len(args) != 1 or not isinstance(args[0], Select):
                        raise CelSyntaxError(f"has() needs a field selection like has(self.x) at {tok.pos}")
                    return Has(args[0].operand, args[0].field)
                return Call(tok.value, None, tuple(args))
            return Ident(tok.value)
        if tok.kind == "op":
            if tok.value == "(":
                node = self.expr()
                self.expect(")")
                return node
            if tok.value == "[":
                return ListLit(tuple(self.args("]")))
            if tok.value == "{":
                return self.map_literal()
        got = "end of rule" if tok.kind == "eof" else repr(tok.value)
        raise CelSyntaxError(f"unexpected {got} at {tok.pos}")

    def map_literal(self) -> Node:
        entries: list[tuple[Node, Node]] = []
        if self.accept("}"):
            return MapLit(())
        while True:
            key = self.expr()
            self.expect(":")
            entries.append((key, self.expr()))
            if self.accept("}"):
                return MapLit(tuple(entries))
            self.expect(",")


def _names(node: Node) -> set[str]:
    """Every identifier the expression mentions (to spot transition rules)."""
    found: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Ident):
            found.add(item.name)
        elif isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, Node):
            stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
    return found


@dataclass(frozen=True)
class Program:
    """One compiled rule."""

    source: str
    ast: Node
    is_transition: bool  # mentions oldSelf: only meaningful on update

    def evaluate(self, self_value: Any) -> Any:
        """The rule's value with `self` bound; raises `cel_eval.CelError` on failure."""
        return cel_eval.evaluate(self.ast, {"self": self_value})

    def check(self, self_value: Any) -> str | None:
        """None when the rule holds; "false" when it does not; otherwise why it failed."""
        if self.is_transition:
            return None
        try:
            result = self.evaluate(self_value)
        except cel_eval.CelError as exc:
            return str(exc)
        except (RecursionError, MemoryError, OverflowError, ValueError, TypeError) as exc:
            return f"evaluation failed: {exc.__class__.__name__}"
        if result is True:
            return None
        if result is False:
            return "false"
        return f"rule must evaluate to a bool (got {cel_eval.type_name(result)})"


@lru_cache(maxsize=1024)
def compile_rule(text: str) -> Program:
    """Parse one rule (cached by its text); raises CelSyntaxError."""
    try:
        ast = _Parser(text).parse()
    except RecursionError:
        raise CelSyntaxError("rule is nested too deeply") from None
    return Program(text, ast, "oldSelf" in _names(ast))
