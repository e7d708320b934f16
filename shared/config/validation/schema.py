"""Structural validation of a spec against its kind's CRD schema, as the API server does.

Contract: `check_spec(schema, spec, f, path)` reports into `f` every way `spec` breaks
the OpenAPI v3 schema (unknown fields, types, formats, enums, bounds, lengths,
patterns, required, list-map keys, oneOf/anyOf/allOf/not) and its
`x-kubernetes-validations` CEL rules, each once at the deepest path. It never raises.

Kubernetes semantics kept: a null in a non-nullable field counts as absent (the API
server prunes it); integer-valued numbers such as `80.0` are integers; map keys are
strings (YAML `8080:` is "8080"); unknown fields are invisible to CEL. A node's CEL rules
run only when its subtree is structurally sound: no type, required, enum, too-long or
too-many error below it (the errors Kubernetes treats as blocking for CEL).
"""
from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import json
import math
import re
from functools import lru_cache
from typing import Any

import re2

from isthmus.shared.config.validation import cel
from isthmus.shared.config.validation.report import Findings, at

__all__ = ["check_spec", "prune_spec"]

_TYPE_WORDS = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "a boolean"}
_INT64 = (-(2**63), 2**63 - 1)
_FORMAT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
                  "int64": _INT64, "uint64": (0, 2**64 - 1)}
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./-]+")


def check_spec(schema: dict[str, Any], spec: Any, f: Findings, path: str = "spec") -> None:
    """Report every schema and CEL-rule violation of `spec` into `f`."""
    try:
        _Walker(f).node(schema, spec, path)
    except RecursionError:
        f.error(path, "is nested too deeply to validate")
    except Exception as exc:  # noqa: BLE001 - the contract is to report, never to raise
        f.error(path, f"could not be validated ({exc.__class__.__name__}: {exc})")


def prune_spec(schema: dict[str, Any], spec: Any) -> Any:
    """`spec` as the API server stores it once admitted: unknown fields and nulls of
    non-nullable fields dropped, integer-valued numbers as ints, map keys as strings."""
    try:
        return _Walker(Findings(), rules=False).node(schema, spec, "spec")[0]
    except Exception:  # noqa: BLE001 - an input check_spec rejects has no pruned form
        return spec


# --- how values are named in messages -------------------------------------------------
def _json_key(key: Any) -> str:
    """A mapping key as the YAML→JSON conversion of kubectl names it."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return str(key)


def _show(value: Any) -> str:
    """A scalar as it would appear in JSON, shortened: `"abc"`, `120`, `true`."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _describe(value: Any) -> str:
    """What a value is, for `(got ...)`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {_show(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {_show(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"date {value.isoformat()}; quote it to make it a string"
    return type(value).__name__


def _enum_word(value: Any) -> str:
    return value if isinstance(value, str) and _PLAIN_WORD.fullmatch(value) else _show(value)


def _fields(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


# --- type predicates --------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return _is_int(value)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return True  # a type this checker does not know constrains nothing


def _same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are never numbers."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@lru_cache(maxsize=256)
def _pattern(text: str) -> Any:
    try:
        return re2.compile(text)
    except Exception:  # noqa: BLE001 - a pattern RE2 cannot compile constrains nothing
        return None


def _required_only(branch: Any) -> list[str] | None:
    """The field names of a `{required: [...]}` branch (Istio's proto-oneof encoding)."""
    if isinstance(branch, dict) and set(branch) == {"required"} and isinstance(branch["required"], list):
        return [str(r) for r in branch["required"]]
    return None


def _type_only(branches: list[dict[str, Any]]) -> list[str] | None:
    if all(set(b) == {"type"} and isinstance(b["type"], str) for b in branches):
        return [b["type"] for b in branches]
    return None


class _Walker:
    """One pass over a value and its schema. `inner` walkers check the branches of
    oneOf/anyOf/allOf/not: no unknown-field checks and no CEL there."""

    def __init__(self, f: Findings, *, inner: bool = False, rules: bool = True) -> None:
        self.f = f
        self.inner = inner
        self.run_rules = rules and not inner

    def node(self, s: Any, v: Any, path: str) -> tuple[Any, bool]:
        """Check `v` at `path`; return (`v` as CEL sees it, structurally sound?)."""
        if not isinstance(s, dict) or not s:
            return v, True
        if v is None:
            if s.get("nullable") or "type" not in s:
                return None, True
            self.f.error(path, f"must be {_TYPE_WORDS.get(s['type'], s['type'])} (got null)")
            return None, False
        want = None
        if s.get("x-kubernetes-int-or-string"):
            if not (isinstance(v, str) or _is_int(v)):
                want = "an integer or a string"
        elif isinstance(s.get("type"), str) and not _type_ok(s["type"], v):
            want = _TYPE_WORDS.get(s["type"], s["type"])
            if s["type"] == "number" and isinstance(v, float):
                want = "a finite number"
        if want is not None:
            self.f.error(path, f"must be {want} (got {_describe(v)})")
            return v, False
        if isinstance(v, dict):
            clean, sound = self.object(s, v, path)
        elif isinstance(v, (list, tuple)):
            clean, sound = self.array(s, v, path)
        else:
            clean, sound = self.scalar(s, v, path)
        self.logic(s, clean, path)
        if sound and self.run_rules:
            self.rules(s, clean, path)
        return clean, sound

    # --- objects, lists, scalars ------------------------------------------------------
    def object(self, s: dict[str, Any], v: dict[Any, Any], path: str) -> tuple[dict[str, Any], bool]:
        props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        extra = s.get("additionalProperties")
        open_object = (
            self.inner or extra is True or s.get("x-kubernetes-preserve-unknown-fields") is True
            or (s.get("type") != "object" and "properties" not in s and extra is None)
        )
        present: dict[str, Any] = {}
        for key, value in v.items():
            name = _json_key(key)
            declared = props.get(name) if name in props else extra if isinstance(extra, dict) else None
            if value is None and isinstance(declared, dict) and not declared.get("nullable"):
                continue  # the API server prunes nulls of non-nullable fields
            present[name] = value
        sound = True
        for name in s.get("required") or ():
            if isinstance(name, str) and name not in present:
                self.f.error(at(path, name), "required")
                sound = False
        clean: dict[str, Any] = {}
        for name, value in present.items():
            if name in props:
                clean[name], ok = self.node(props[name], value, at(path, name))
            elif isinstance(extra, dict):
                clean[name], ok = self.node(extra, value, f"{path}[{name}]")
            elif open_object:
                clean[name], ok = value, True
            else:
                hint = difflib.get_close_matches(name, list(props), n=1, cutoff=0.75)
                message = f'unknown field (did you mean "{hint[0]}"?)' if hint else "unknown field"
                self.f.error(at(path, name), message)
                continue
            sound = sound and ok
        count, most, least = len(present), s.get("maxProperties"), s.get("minProperties")
        if isinstance(most, int) and count > most:
            self.f.error(path, f"must have at most {most} entries (got {count})")
            sound = False
        if isinstance(least, int) and count < least:
            need = "must not be empty" if least == 1 else f"must have at least {least} entries (got {count})"
            self.f.error(path, need)
        return clean, sound

    def array(self, s: dict[str, Any], v: list[Any] | tuple[Any, ...], path: str) -> tuple[list[Any], bool]:
        clean, sound = [], True
        for i, item in enumerate(v):
            value, ok = self.node(s.get("items"), item, at(path, i))
            clean.append(value)
            sound = sound and ok
        most, least = s.get("maxItems"), s.get("minItems")
        if isinstance(most, int) and len(v) > most:
            self.f.error(path, f"must have at most {most} items (got {len(v)})")
            sound = False
        if isinstance(least, int) and len(v) < least:
            need = "must not be empty" if least == 1 else f"must have at least {least} items (got {len(v)})"
            self.f.error(path, need)
        self.unique(s, clean, path)
        return clean, sound

    def unique(self, s: dict[str, Any], items: list[Any], path: str) -> None:
        """`x-kubernetes-list-type: map` (keys) and `set` (whole items) forbid duplicates."""
        keys, list_type = s.get("x-kubernetes-list-map-keys"), s.get("x-kubernetes-list-type")
        if list_type not in ("map", "set", None) or (list_type is None and not keys):
            return
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if keys:
                if not isinstance(item, dict) or not all(k in item for k in keys):
                    continue
                ident = ", ".join(f"{k} {_show(item[k])}" for k in keys)
            else:
                ident = json.dumps(item, sort_keys=True, default=str)
            if ident in seen:
                self.f.error(at(path, i), f"duplicate entry: {ident} is already used by {at(path, seen[ident])}")
            else:
                seen[ident] = i

    def scalar(self, s: dict[str, Any], v: Any, path: str) -> tuple[Any, bool]:
        sound = True
        enum = s.get("enum")
        if isinstance(enum, list) and not any(_same(v, e) for e in enum):
            allowed = ", ".join(_enum_word(e) for e in enum)
            self.f.error(path, f"must be one of {allowed} (got {_show(v)})")
            sound = False
        if isinstance(v, str):
            sound = self.string(s, v, path) and sound
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if s.get("type") == "integer" or s.get("x-kubernetes-int-or-string"):
                v = int(v)
            self.bounds(s, v, path)
        return v, sound

    def string(self, s: dict[str, Any], v: str, path: str) -> bool:
        most, least, pattern = s.get("maxLength"), s.get("minLength"), s.get("pattern")
        if isinstance(least, int) and len(v) < least:
            need = "must not be empty" if least == 1 else f"must be at least {least} characters long (got {len(v)})"
            self.f.error(path, need)
        if isinstance(pattern, str) and (rx := _pattern(pattern)) is not None and rx.search(v) is None:
            self.f.error(path, f"must match the regular expression {pattern} (got {_show(v)})")
        if s.get("format") == "byte":
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                self.f.error(path, "must be base64-encoded bytes")
        if isinstance(most, int) and len(v) > most:
            self.f.error(path, f"must be at most {most} characters long (got {len(v)})")
            return False
        return True

    def bounds(self, s: dict[str, Any], v: int | float, path: str) -> None:
        lo, hi = s.get("minimum"), s.get("maximum")
        lo_open, hi_open = s.get("exclusiveMinimum") is True, s.get("exclusiveMaximum") is True
        if s.get("type") == "integer":
            fmt_lo, fmt_hi = _FORMAT_BOUNDS.get(s.get("format"), _INT64)
            if lo is None or lo < fmt_lo:
                lo, lo_open = fmt_lo, False
            if hi is None or hi > fmt_hi:
                hi, hi_open = fmt_hi, False
        low_bad = lo is not None and (v <= lo if lo_open else v < lo)
        high_bad = hi is not None and (v >= hi if hi_open else v > hi)
        if not (low_bad or high_bad):
            return
        if lo is not None and hi is not None and not lo_open and not hi_open:
            need = f"must be between {_show(lo)} and {_show(hi)}"
        else:
            parts = []
            if lo is not None:
                parts.append(f"{'greater than' if lo_open else 'at least'} {_show(lo)}")
            if hi is not None:
                parts.append(f"{'less than' if hi_open else 'at most'} {_show(hi)}")
            need = "must be " + " and ".join(parts)
        self.f.error(path, f"{need} (got {_show(v)})")

    # --- oneOf / anyOf / allOf / not, rendered as field rules -------------------------
    def matches(self, branch: Any, v: Any, path: str) -> bool:
        scratch = Findings()
        _Walker(scratch, inner=True).node(branch, v, path)
        return not scratch.errors

    def logic(self, s: dict[str, Any], v: Any, path: str) -> None:
        for branch in s.get("allOf") or ():
            _Walker(self.f, inner=True).node(branch, v, path)
        one_of = [b for b in s.get("oneOf") or () if isinstance(b, dict)]
        if one_of:
            hits = sum(self.matches(b, v, path) for b in one_of)
            if hits != 1:
                self.f.error(path, _one_of_message(one_of, hits, v))
        any_of = [b for b in s.get("anyOf") or () if isinstance(b, dict)]
        if any_of and not s.get("x-kubernetes-int-or-string"):  # int-or-string: checked as a type
            if not any(self.matches(b, v, path) for b in any_of):
                self.f.error(path, _any_of_message(any_of))
        forbidden = s.get("not")
        if isinstance(forbidden, dict) and forbidden and self.matches(forbidden, v, path):
            self.f.error(path, _not_message(forbidden))

    # --- x-kubernetes-validations ----------------------------------------------------
    def rules(self, s: dict[str, Any], v: Any, path: str) -> None:
        for rule in s.get("x-kubernetes-validations") or ():
            if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
                continue
            text = rule["rule"]
            try:
                outcome = cel.compile_rule(text).check(v)
            except cel.CelSyntaxError as exc:
                self.f.warn(path, f"schema rule not checked ({exc}): {text}")
                continue
            if outcome is None:
                continue
            message = _rule_message(rule, v) or f"failed rule: {' '.join(text.split())}"
            where = path + rule["fieldPath"] if isinstance(rule.get("fieldPath"), str) else path
            self.f.error(where, message if outcome == "false" else f"{message} ({outcome})")


def _rule_message(rule: dict[str, Any], v: Any) -> str:
    expression = rule.get("messageExpression")
    if isinstance(expression, str):
        try:
            text = cel.compile_rule(expression).evaluate(v)
            if isinstance(text, str) and text.strip():
                return text
        except (cel.CelSyntaxError, cel.cel_eval.CelError):
            pass
    message = rule.get("message")
    return message if isinstance(message, str) and message else ""


def _one_of_message(branches: list[dict[str, Any]], hits: int, v: Any) -> str:
    names = [n for b in branches for n in (_required_only(b) or ())]
    if names:
        chosen = [n for n in names if isinstance(v, dict) and n in v]
        if len(chosen) > 1:
            return f"only one of {_fields(names)} may be set (got {_fields(chosen)})"
        if not chosen:
            return f"exactly one of {_fields(names)} must be set"
    types = _type_only(branches)
    if types:
        return "must be exactly one of: " + ", ".join(_TYPE_WORDS.get(t, t) for t in types)
    return f"must match exactly one of {len(branches)} allowed forms (matched {hits})"


def _any_of_message(branches: list[dict[str, Any]]) -> str:
    names = [n for b in branches for n in (_required_only(b) or ())]
    if names and all(_required_only(b) for b in branches):
        return f"at least one of {_fields(names)} must be set"
    types = _type_only(branches)
    if types:
        return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    return f"must match at least one of {len(branches)} allowed forms"


def _not_message(branch: dict[str, Any]) -> str:
    names = _required_only(branch)
    if names:
        return f"{_fields(names)} must not be set"
    inner = [b for b in branch.get("anyOf") or () if _required_only(b)] if set(branch) == {"anyOf"} else []
    if inner and len(inner) == len(branch["anyOf"]):
        return f"none of {_fields([n for b in inner for n in _required_only(b) or ()])} may be set"
    return "must not match the forbidden form"
