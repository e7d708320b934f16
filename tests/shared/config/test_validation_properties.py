"""Property tests: the validator and the YAML reader never crash, whatever they are fed.

`validate_document` must return an `Outcome` (string errors; a resource exactly when
there are no errors) for arbitrary JSON-like values, for schema-shaped specs with wrong
types and odd strings, and for mutations of the valid corpus; `parse_text` may only
raise `InvalidConfig`. Runs are bounded so the file takes seconds, not minutes.
"""
from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.shared.config import documents
from isthmus.shared.config.kinds import KINDS, KindInfo, ObjectInfo
from isthmus.shared.config.validation import Findings, Outcome, validate_document
from isthmus.shared.errors import InvalidConfig
from tests.conftest import corpus_path

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KIND_NAMES = [k.kind for k in KINDS]

# Strings that poke at the semantic rules: wildcards, templates, IPs, ports, durations, URLs, JSON.
ODD_STRINGS = [
    "", " ", "*", "**", "a*b", "*a*", "/{**}", "/{*}/x/{**}/{*}", "{*}", "/a/{b}", "}", "{",
    "1.2.3.4", "10.0.0.0/33", "::1", "fe80::1%eth0", "1.2.3.4/24", "300.1.1.1", "0", "80", "65536",
    "-1", "+80", "٣", "1s", "1.5ms", "-2s", "0s", "1h1m", "100us", "10", "http://", "https://x:99999/k",
    "https://[::1", "ftp://x", "request.headers[x]", "request.headers[]", "source.ip", "destination.port",
    '{"keys":[{"kty":"RSA"}]}', '{"keys":5}', "[[[[", "ALLOW", "DENY", "CUSTOM", "STRICT", "UPSERT",
    "REMOVE", "HTTP", "TLS", "\x00", "ü", "a/b/c", "istio-system/*", "./foo.com", "~/*", "*/x.com",
    "reviews.default.svc.cluster.local", "x" * 300, "response.code >= 400", "(", "a.b[c", "%", "%REQ(x)%",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(ODD_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(ODD_STRINGS),
                                                                inner, max_size=4),
    max_leaves=24,
)
def _hashable(value: Any) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


# YAML also yields non-JSON keys and values (ints, None, bools as keys; tuples never).
yamlish_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(scalars.filter(_hashable), inner, max_size=3),
    max_leaves=16,
)



def check_outcome(outcome: Any) -> None:
    """The invariants every call of `validate_document` must keep."""
    assert isinstance(outcome, Outcome)
    assert isinstance(outcome.errors, tuple) and isinstance(outcome.warnings, tuple)
    assert all(isinstance(e, str) and e for e in outcome.errors)
    assert all(isinstance(w, str) and w for w in outcome.warnings)
    # A swallowed exception is a crash too (validators report it instead of raising).
    assert not [e for e in outcome.errors if "could not be validated (" in e], outcome.errors
    if outcome.errors:
        assert outcome.resource is None
    else:
        assert outcome.resource is not None
        json.dumps(outcome.resource.spec, allow_nan=True)


def envelope(kind: KindInfo, spec: Any, api_version: str | None = None) -> dict[str, Any]:
    return {"apiVersion": api_version or kind.api_versions[0], "kind": kind.kind,
            "metadata": {"name": "fuzz", "namespace": "default"}, "spec": spec}


# ------------------------------------------------------------------ schema-shaped specs


def _string_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    odd = st.sampled_from(ODD_STRINGS) | st.text(max_size=10)
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | odd
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: len(v) < 64) | odd
    return odd


def _shaped(schema: dict[str, Any], depth: int, garbage: int) -> st.SearchStrategy[Any]:
    """Schema-conforming values (odd strings included), each node replaced by a random
    scalar `garbage` percent of the time: 0 reaches the semantic validators, more tests
    the schema walker."""
    if depth > 7 or not isinstance(schema, dict):
        return scalars
    typ = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        good = st.integers(min_value=-5, max_value=70000) | _string_for(schema)
    elif typ == "object" and "properties" in schema:
        props = {name: _shaped(sub, depth + 1, garbage) for name, sub in schema["properties"].items()}
        required = set(schema.get("required", ()))
        good = st.fixed_dictionaries({k: v for k, v in props.items() if k in required},
                                     optional={k: v for k, v in props.items() if k not in required})
    elif typ == "object" and isinstance(schema.get("additionalProperties"), dict):
        good = st.dictionaries(st.sampled_from(["a", "8080", "0", "", "*", "x-y"]) | st.text(max_size=6),
                               _shaped(schema["additionalProperties"], depth + 1, garbage), max_size=3)
    elif typ == "object":
        good = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    elif typ == "array":
        good = st.lists(_shaped(schema.get("items", {}), depth + 1, garbage), max_size=3)
    elif typ == "string":
        good = _string_for(schema)
    elif typ == "integer":
        good = st.integers(min_value=-5, max_value=70000) | st.integers()
    elif typ == "number":
        good = st.floats(min_value=-10, max_value=200) | st.floats()
    elif typ == "boolean":
        good = st.booleans()
    else:
        good = json_values
    if not garbage or depth == 0:
        return good
    return st.integers(0, 99).flatmap(lambda n: scalars if n < garbage else good)


@cache
def shaped_spec(kind: str, garbage: int) -> st.SearchStrategy[Any]:
    row = next(k for k in KINDS if k.kind == kind)
    return _shaped(row.schema(), 0, garbage)


# ------------------------------------------------------------------ corpus mutations


@pytest.fixture(scope="module")
def corpus_docs() -> list[dict[str, Any]]:
    folder = corpus_path("istio-validation-valid")
    docs = [d.body for d in documents.read_paths([str(folder)]) if isinstance(d.body, dict)]
    assert docs
    return docs


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair below `node`, depth-first."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


def _retyped(value: Any) -> Any:
    """The same value in the wrong shape."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return {}


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc, default=str))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="mutations")):
        slots = _slots(doc, [])
        if not slots:
            break
        container, key = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
        op = data.draw(st.sampled_from(["drop", "random", "retype", "null", "odd", "add"]), label="op")
        if op == "drop":
            del container[key]
        elif op == "random":
            container[key] = data.draw(json_values, label="value")
        elif op == "retype":
            container[key] = _retyped(container[key])
        elif op == "null":
            container[key] = None
        elif op == "odd":
            container[key] = data.draw(st.sampled_from(ODD_STRINGS), label="odd")
        elif isinstance(container[key], dict):
            container[key][data.draw(st.text(max_size=8), label="new key")] = data.draw(json_values, label="v")
        elif isinstance(container[key], list):
            container[key].append(data.draw(json_values, label="item"))
    return doc


# ------------------------------------------------------------------ properties


@BOUNDED
@given(kind=st.sampled_from(KIND_NAMES), spec=json_values)
def test_arbitrary_spec_never_crashes(kind: str, spec: Any) -> None:
    row = next(k for k in KINDS if k.kind == kind)
    check_outcome(validate_document(envelope(row, spec)))


@BOUNDED
@given(doc=yamlish_values | st.dictionaries(
    st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status", "extra"]),
    yamlish_values | st.sampled_from([*KIND_NAMES, "security.istio.io/v1", "networking.istio.io/v1"]), max_size=6))
def test_arbitrary_document_never_crashes(doc: Any) -> None:
    check_outcome(validate_document(doc))


@BOUNDED
@given(kind=st.sampled_from(KIND_NAMES), data=st.data())
def test_schema_shaped_spec_never_crashes(kind: str, data: st.DataObject) -> None:
    row = next(k for k in KINDS if k.kind == kind)
    garbage = data.draw(st.sampled_from([0, 0, 3, 20]), label="garbage percent")
    spec = data.draw(shaped_spec(kind, garbage), label="spec")
    api_version = data.draw(st.sampled_from(row.api_versions), label="apiVersion")
    check_outcome(validate_document(envelope(row, spec, api_version)))


@BOUNDED
@given(kind=st.sampled_from(["PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", "Telemetry"]),
       garbage=st.sampled_from([0, 5, 30]), data=st.data())
def test_security_and_telemetry_validators_survive_any_typed_spec(kind: str, garbage: int,
                                                                  data: st.DataObject) -> None:
    """Defence in depth: these semantic validators never raise, even on specs the schema would refuse."""
    row = next(k for k in KINDS if k.kind == kind)
    spec = data.draw(shaped_spec(kind, garbage), label="spec")
    if not isinstance(spec, dict):
        return
    f = Findings()
    info = ObjectInfo(kind=kind, api_version=row.api_versions[0], name="fuzz", namespace="default",
                      labels={}, annotations={})
    row.validate(row.spec_class.from_dict(json.loads(json.dumps(spec))), info, f)
    assert all(isinstance(x.path, str) and isinstance(x.message, str) for x in f.errors + f.warnings)


@BOUNDED
@given(data=st.data())
def test_mutated_corpus_never_crashes(corpus_docs: list[dict[str, Any]], data: st.DataObject) -> None:
    doc = mutate(data.draw(st.sampled_from(corpus_docs), label="document"), data)
    check_outcome(validate_document(doc))


def test_corpus_documents_validate() -> None:
    """The unmutated corpus is the baseline the mutations start from."""
    for doc in documents.read_paths([str(corpus_path("istio-validation-valid"))]):
        check_outcome(validate_document(doc.body, source=doc.source))


YAML_ALPHABET = st.sampled_from([*"abc019:-[]{},'\"#&*!|>%@`?\n \t.=~\\/", "!!binary ", "!!set ", "!!int ", "!!float ",
                                 "!!bool ", "!!timestamp ", "!!str ", "&a ", "*a", "<<", "---", "...", "2020-02-30",
                                 "2001-12-14t21:59:43.10+25:00", "0x1F", "1e400", ".nan", "kind: List"])


@BOUNDED
@given(text=st.text(max_size=200))
def test_parse_text_only_raises_invalid_config(text: str) -> None:
    _parse(text)


@BOUNDED
@given(pieces=st.lists(YAML_ALPHABET, max_size=60))
def test_parse_yamlish_text_only_raises_invalid_config(pieces: list[str]) -> None:
    _parse("".join(pieces))


@BOUNDED
@given(value=yamlish_values, cut=st.integers(min_value=0, max_value=400))
def test_parse_truncated_yaml_only_raises_invalid_config(value: Any, cut: int) -> None:
    import yaml

    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": value}, default_flow_style=False)
    _parse(text[:cut])


def _parse(text: str) -> None:
    try:
        docs = documents.parse_text(text, "fuzz.yaml")
    except InvalidConfig as exc:
        assert exc.errors and all(isinstance(e, str) for e in exc.errors)
        return
    assert isinstance(docs, list)
    for doc in docs:
        assert isinstance(doc, documents.Document)
        check_outcome(validate_document(doc.body, source=doc.source))


# Crashes the properties above found once, kept as named examples (see the report to the owners).
KNOWN_DOCUMENTS = {
    "serviceentry-null-endpoints": {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                                    "metadata": {"name": "se"},
                                    "spec": {"hosts": ["eu.bookinfo.com"], "resolution": "DNS", "endpoints": None,
                                             "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}},
    "destinationrule-null-subsets": {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                                     "metadata": {"name": "dr"}, "spec": {"host": "c", "subsets": None}},
    "virtualservice-null-http": {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                                 "metadata": {"name": "vs"}, "spec": {"hosts": ["c"], "http": None}},
    "gateway-null-servers": {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                             "metadata": {"name": "gw"}, "spec": {"selector": None, "servers": None}},
    "authorizationpolicy-null-rules": {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                                       "metadata": {"name": "ap"}, "spec": {"action": "DENY", "rules": None,
                                                                            "selector": None}},
    "telemetry-null-lists": {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "t"},
                             "spec": {"tracing": [{"customTags": None, "providers": None}], "metrics": None}},
}
KNOWN_TEXTS = {
    "impossible-date": "a: 2020-02-30",
    "offset-out-of-range": "a: 2001-12-14t21:59:43.10+25:00",
    "tagged-int": "a: !!int abc",
    "tagged-float": "a: !!float x",
    "tagged-empty-float": "!!float ",
    "tagged-bool": "a: !!bool maybe",
    "tagged-timestamp": "a: !!timestamp foo",
    "deeply-nested": "[" * 3000 + "]" * 3000,
}


@pytest.mark.parametrize("doc", list(KNOWN_DOCUMENTS.values()), ids=list(KNOWN_DOCUMENTS))
def test_known_documents_never_crash(doc: dict[str, Any]) -> None:
    check_outcome(validate_document(doc))


@pytest.mark.parametrize("text", list(KNOWN_TEXTS.values()), ids=list(KNOWN_TEXTS))
def test_known_texts_only_raise_invalid_config(text: str) -> None:
    _parse(text)
