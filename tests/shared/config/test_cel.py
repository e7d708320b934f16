"""The CEL subset used by Istio's CRD rules: parse, evaluate, fail cleanly."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any, Iterator

import pytest

from isthmus.shared.config.validation import cel
from isthmus.shared.config.validation.cel_lib import Duration, parse_duration

# --- every rule shipped in crds.json -----------------------------------------------------


def _crd_rules() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, rule, schema node carrying it) for every x-kubernetes-validations entry."""
    data = json.loads(resources.files("isthmus.shared.config.schema").joinpath("crds.json").read_text())

    def walk(kind: str, node: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations") or ():
                yield kind, rule["rule"], node
            for value in node.values():
                yield from walk(kind, value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(kind, value)

    for kind, info in data.items():
        yield from walk(kind, info["spec"])


def _sample(schema: dict[str, Any], depth: int = 0) -> Any:
    """A value of the node's shape with every property filled (to exercise field access)."""
    kind = schema.get("type")
    if kind == "object":
        if "properties" in schema and depth < 4:
            return {k: _sample(v, depth + 1) for k, v in schema["properties"].items()}
        if isinstance(schema.get("additionalProperties"), dict):
            return {"80": _sample(schema["additionalProperties"], depth + 1)}
        return {}
    if kind == "array":
        return [_sample(schema.get("items") or {}, depth + 1)] if depth < 4 else []
    if kind == "integer":
        return 80
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if "enum" in schema:
        return schema["enum"][0]
    return "unix:///var/run/a.sock"


def _empty(schema: dict[str, Any]) -> Any:
    return {"object": {}, "array": [], "integer": 0, "number": 0.0, "boolean": False}.get(schema.get("type"), "")


CRD_RULES = sorted({(kind, rule): node for kind, rule, node in _crd_rules()}.items())
UNSUPPORTED = ("undeclared", "no such overload", "evaluation failed", "cannot evaluate", "must evaluate to a bool")


def test_crds_carry_rules() -> None:
    assert len({rule for (_, rule), _ in CRD_RULES}) >= 25


@pytest.mark.parametrize(("kind", "rule", "node"), [(k, r, n) for (k, r), n in CRD_RULES],
                         ids=[f"{k}:{r[:40]}" for (k, r), _ in CRD_RULES])
def test_every_crd_rule_compiles_and_evaluates(kind: str, rule: str, node: dict[str, Any]) -> None:
    program = cel.compile_rule(rule)
    assert cel.compile_rule(rule) is program  # compiled once, cached by text
    for value in (_sample(node), _empty(node)):
        outcome = program.check(value)
        assert outcome is None or isinstance(outcome, str)
        assert not (outcome or "").startswith(UNSUPPORTED), f"{kind}: {rule!r} on {value!r}: {outcome}"


# --- expressions, table-driven ------------------------------------------------------------
ERROR = object()

EXPRESSIONS: list[tuple[str, Any, Any]] = [
    # literals, quoting, escapes
    ("'a\\tb' == \"a\\tb\"", None, True),
    ("'\\x41\\u00e9\\101' == 'Aé' + 'A'", None, True),
    ("r'\\n'.size() == 2", None, True),
    ("'''it's''' == \"it's\"", None, True),
    ("\"a'b\".contains(\"'\")", None, True),
    ("b'abc'.size() == 3", None, True),
    ("0x10 == 16 && 1e3 == 1000.0 && .5 == 0.5", None, True),
    ("[1, 'a', true].size() == 3 && {'k': 1}.size() == 1 && {}.size() == 0", None, True),
    ("null == null && !(null == 0)", None, True),
    # logic and errors absorbed the CEL way
    ("true ? 1 : 2", None, 1),
    ("false ? 1 : true ? 2 : 3", None, 2),
    ("false && self.missing", {}, False),
    ("self.missing && false", {}, False),
    ("self.missing || true", {}, True),
    ("self.missing || false", {}, ERROR),
    ("!true || !false", None, True),
    ("1 ? 2 : 3", None, ERROR),
    # arithmetic and comparison
    ("1 + 2 * 3 - 4 / 2 == 5", None, True),
    ("-7 / 2 == -3 && -7 % 2 == -1", None, True),
    ("1 / 0", None, ERROR),
    ("9223372036854775807 + 1", None, ERROR),
    ("'ab' + 'c' == 'abc' && [1] + [2] == [1, 2]", None, True),
    ("1 == 1.0 && 2 > 1.5 && 'a' < 'b'", None, True),
    ("1 == '1'", None, False),
    ("1 < 'a'", None, ERROR),
    ("true == 1", None, False),
    ("'a' in ['a', 'b'] && !('c' in ['a']) && 'k' in {'k': 1}", None, True),
    # self, fields, has, indexing
    ("has(self.a) && !has(self.b)", {"a": 1}, True),
    ("has(self.a.b)", {"a": {"b": None}}, True),
    ("self.a.b", {"a": {}}, ERROR),
    ("self[1] == 'y'", ["x", "y"], True),
    ("self[5]", ["x"], ERROR),
    ("self['k'] == 2", {"k": 2}, True),
    ("has(self.a)", "text", ERROR),
    # macros
    ("self.all(x, x > 0)", [1, 2, 3], True),
    ("self.all(x, x > 1)", [1, 2, 3], False),
    ("self.exists(x, x == 2)", [1, 2, 3], True),
    ("self.exists_one(x, x > 1)", [1, 2, 3], False),
    ("self.all(k, k.size() > 0)", {"a": 1, "bb": 2}, True),
    ("self.map(x, x * 2) == [2, 4] && self.filter(x, x > 1) == [2]", [1, 2], True),
    ("self.map(x, x > 1, x * 10) == [20]", [1, 2], True),
    ("self.exists(x, x.missing) ", [{"missing": True}, {}], True),
    ("self.all(x, x.missing)", [{"missing": True}, {}], ERROR),
    # strings
    ("self.startsWith('unix://') && self.endsWith('.sock')", "unix:///a.sock", True),
    ("self.substring(7, 8) == '/'", "unix:///a", True),
    ("self.substring(7, 8)", "unix://", ERROR),
    ("self.substring(2) == 'llo'", "hello", True),
    ("self.matches('^[a-z]+$') && !self.matches('[0-9]')", "abc", True),
    ("'x'.matches('(')", None, ERROR),
    ("size(self) == 3 && self.size() == 3", "héé", True),
    ("self.lowerAscii() == 'abc' && self.upperAscii() == 'ABC'", "aBc", True),
    ("self.split(',').size() == 2 && ['a', 'b'].join('-') == 'a-b'", "a,b", True),
    # conversions
    ("int(self) == 8080", "8080", True),
    ("int(self)", "80a", ERROR),
    ("int(self)", " 80", ERROR),
    ("int(2.9) == 2 && string(12) == '12' && string(true) == 'true' && double('1.5') == 1.5", None, True),
    # durations
    ("duration(self) >= duration('1ms')", "1ms", True),
    ("duration(self) >= duration('1ms')", "0.5ms", False),
    ("duration(self) >= duration('1ms')", "1h2m3.5s", True),
    ("duration(self) >= duration('1ms')", "abc", ERROR),
    ("duration(self) >= duration('1ms')", "10", ERROR),
    ("duration(self) == duration('90m')", "1h30m", True),
    ("duration('1s') + duration('500ms') == duration('1.5s')", None, True),
    ("duration(self).getSeconds() == 90", "1m30s", True),
    # URLs
    ("url(self).getScheme() in ['http', 'https']", "https://example.com/keys", True),
    ("url(self).getScheme() in ['http', 'https']", "HTTP://example.com", True),
    ("url(self).getScheme() in ['http', 'https']", "ftp://example.com", False),
    ("url(self).getScheme() in ['http', 'https']", "example.com/keys", ERROR),
    ("url(self).getHost() == 'a.b:8443' && url(self).getHostname() == 'a.b' && url(self).getPort() == '8443'",
     "https://a.b:8443/x?y=1", True),
    ("url(self).getHostname() == '::1' && url(self).getEscapedPath() == '/p'", "http://[::1]:80/p", True),
    ("url(self).getQuery()['k'] == ['1', '2']", "http://h/?k=1&k=2", True),
    ("isURL(self)", "http://bad host/", False),
    ("isURL(self)", "/just/a/path", True),
    # function misuse is an error, not an exception
    ("nosuch(self)", 1, ERROR),
    ("self.contains(1)", "a", ERROR),
    ("size(self)", 5, ERROR),
    # transition rules pass on create
    ("self == oldSelf", 1, True),
]


@pytest.mark.parametrize(("expr", "self_value", "expected"), EXPRESSIONS, ids=[e[0][:50] for e in EXPRESSIONS])
def test_expression(expr: str, self_value: Any, expected: Any) -> None:
    program = cel.compile_rule(expr)
    if program.is_transition:
        assert program.check(self_value) is None
        return
    if expected is ERROR:
        with pytest.raises(cel.cel_eval.CelError):
            program.evaluate(self_value)
        outcome = program.check(self_value)
        assert outcome not in (None, "false")
        assert not outcome.startswith("evaluation failed")
    else:
        assert program.evaluate(self_value) == expected
        if isinstance(expected, bool):
            assert program.check(self_value) == (None if expected else "false")


def test_check_reports_why() -> None:
    assert cel.compile_rule("duration(self) >= duration('1ms')").check("abc") == "invalid duration 'abc'"
    assert cel.compile_rule("self.x").check({}) == "no such key: x"
    assert cel.compile_rule("1").check(None) == "rule must evaluate to a bool (got int)"


@pytest.mark.parametrize("rule", [
    "self.", "(1", "1 +", "has(self)", "'unterminated", "self ? 1", "[1, 2", "{'a' 1}", "a # b", "'\\q'",
])
def test_syntax_errors(rule: str) -> None:
    with pytest.raises(cel.CelSyntaxError):
        cel.compile_rule(rule)


def test_multiline_rule_from_crd() -> None:
    rule = "(has(self.a) || has(self.b)) ? (!has(self.c) &&\n!has(self.d)) : true"
    assert cel.compile_rule(rule).check({"a": 1, "c": 2}) == "false"
    assert cel.compile_rule(rule).check({"a": 1}) is None


@pytest.mark.parametrize(("text", "nanos"), [
    ("0", 0), ("1ns", 1), ("1.5s", 1_500_000_000), ("-2m", -120 * 10**9), ("1h2m", 3720 * 10**9),
    ("1µs", 1000), ("1us", 1000), (".5ms", 500_000), ("2562047h", 2562047 * 3600 * 10**9),
])
def test_go_durations(text: str, nanos: int) -> None:
    assert parse_duration(text) == Duration(nanos)


@pytest.mark.parametrize("text", ["", "1", "s", "1.s.", "1d", "1 s", "-", "3000000h"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(cel.cel_eval.CelError):
        parse_duration(text)


def test_int_literal_bounds() -> None:
    assert cel.compile_rule("-9223372036854775808 < 0").evaluate(None) is True
    with pytest.raises(cel.CelSyntaxError):
        cel.compile_rule("9223372036854775808 > 0")
