"""Istio's webhook rules for Telemetry: targets, providers, tracing, metrics, access logs.

Cases the CRD schema lets through run the whole pipeline; rules the CRD also enforces
(minLength, oneOf, CEL) are checked on `validate_telemetry` itself.
"""
from __future__ import annotations

import pytest

from isthmus.shared.config import documents, kinds
from isthmus.shared.config.validation import Findings, validate_document
from tests.conftest import corpus_path

SUBJECT = "Telemetry foo/t: "


def _split(lines: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        assert line.startswith(SUBJECT), line
        path, _, message = line[len(SUBJECT):].partition(": ")
        out.append((path, message))
    return out


def pipeline(spec: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    outcome = validate_document({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                                 "metadata": {"name": "t", "namespace": "foo"}, "spec": spec})
    return _split(outcome.errors), _split(outcome.warnings)


def semantic(spec: dict) -> list[tuple[str, str]]:
    row = kinds.by_kind("Telemetry")
    f = Findings()
    info = kinds.ObjectInfo(kind="Telemetry", api_version="telemetry.istio.io/v1", name="t", namespace="foo",
                            labels={}, annotations={})
    row.validate(row.spec_class.from_dict(spec), info, f)
    return [(e.path, e.message) for e in f.errors]


def tag(**kinds_: object) -> dict:
    return {"tracing": [{"customTags": {"my-tag": kinds_}}]}


def override(**o: object) -> dict:
    return {"metrics": [{"overrides": [o]}]}


def log_filter(expression: str) -> dict:
    return {"accessLogging": [{"providers": [{"name": "envoy"}], "filter": {"expression": expression}}]}


INVALID = [
    ("custom-tag-without-kind", tag(), "spec.tracing[0].customTags[my-tag]", "set exactly one of literal"),
    ("tag-upsert-without-value", override(tagOverrides={"request_protocol": {}}),
     "spec.metrics[0].overrides[0].tagOverrides[request_protocol].value", "value must be set when operation is UPSERT"),
    ("empty-filter", log_filter(""), "spec.accessLogging[0].filter.expression", "must not be empty"),
    ("blank-filter", log_filter("   "), "spec.accessLogging[0].filter.expression", "must not be empty"),
    ("filter-not-cel", log_filter("response.code >="), "spec.accessLogging[0].filter.expression",
     "valid CEL expression"),
    ("filter-unbalanced", log_filter("(response.code >= 400"), "spec.accessLogging[0].filter.expression",
     "valid CEL expression"),
    ("target-ref-kind", {"targetRef": {"kind": "Deployment", "name": "x"}}, "spec.targetRef",
     "targetRef must be to a Service"),
    ("target-refs-group", {"targetRefs": [{"kind": "Gateway", "name": "x"}]}, "spec.targetRefs[0]",
     "targetRef must be to"),
    ("second-entry-indexed", {"metrics": [{"providers": [{"name": "prometheus"}]},
                                          {"overrides": [{}, {"tagOverrides": {"a": {}}}]}]},
     "spec.metrics[1].overrides[1].tagOverrides[a].value", "UPSERT"),
]

SEMANTIC_ONLY = [
    ("tag-explicit-upsert-empty", override(tagOverrides={"x": {"operation": "UPSERT", "value": ""}}),
     "spec.metrics[0].overrides[0].tagOverrides[x].value", "UPSERT"),
    ("provider-empty-name", {"tracing": [{"providers": [{"name": "zipkin"}, {"name": ""}]}]},
     "spec.tracing[0].providers[1].name", "must not be empty"),
    ("metrics-provider-empty", {"metrics": [{"providers": [{"name": ""}]}]},
     "spec.metrics[0].providers[0].name", "must not be empty"),
    ("logging-provider-empty", {"accessLogging": [{"providers": [{}]}]},
     "spec.accessLogging[0].providers[0].name", "must not be empty"),
    ("sampling-over-100", {"tracing": [{"randomSamplingPercentage": 100.5}]},
     "spec.tracing[0].randomSamplingPercentage", "[0.0, 100.0]"),
    ("sampling-negative", {"tracing": [{"randomSamplingPercentage": -1}]},
     "spec.tracing[0].randomSamplingPercentage", "[0.0, 100.0]"),
    ("sampling-nan", {"tracing": [{"randomSamplingPercentage": float("nan")}]},
     "spec.tracing[0].randomSamplingPercentage", "[0.0, 100.0]"),
    ("two-tag-kinds", tag(literal={"value": "x"}, header={"name": "x-h"}), "spec.tracing[0].customTags[my-tag]",
     "(found literal, header)"),
    ("literal-empty", tag(literal={"value": ""}), "spec.tracing[0].customTags[my-tag].literal.value",
     "must not be empty"),
    ("environment-no-name", tag(environment={"defaultValue": "x"}),
     "spec.tracing[0].customTags[my-tag].environment.name", "environment variable name"),
    ("header-no-name", tag(header={"name": ""}), "spec.tracing[0].customTags[my-tag].header.name", "header name"),
    ("formatter-empty", tag(formatter={}), "spec.tracing[0].customTags[my-tag].formatter.value", "must not be empty"),
    ("tag-remove-with-value", override(tagOverrides={"x": {"operation": "REMOVE", "value": "v"}}),
     "spec.metrics[0].overrides[0].tagOverrides[x].value", "must not be set when operation is REMOVE"),
    ("metric-and-custom", override(match={"metric": "REQUEST_COUNT", "customMetric": "x"}),
     "spec.metrics[0].overrides[0].match", "only one of metric or customMetric"),
    ("custom-metric-empty", override(match={"customMetric": ""}),
     "spec.metrics[0].overrides[0].match.customMetric", "must not be empty"),
    ("unknown-metric", override(match={"metric": "REQUESTS"}), "spec.metrics[0].overrides[0].match.metric",
     "unknown metric"),
    ("reporting-interval", {"metrics": [{"reportingInterval": "10"}]}, "spec.metrics[0].reportingInterval",
     "invalid duration"),
    ("reporting-interval-too-small", {"metrics": [{"reportingInterval": "100us"}]},
     "spec.metrics[0].reportingInterval", "at least 1ms"),
    ("selector-wildcard", {"selector": {"matchLabels": {"app": "*"}}}, "spec.selector.matchLabels[app]",
     "wildcard is not supported"),
    ("selector-and-target", {"selector": {"matchLabels": {"app": "a"}}, "targetRef": {"kind": "Service", "name": "a"}},
     "spec", "only one of selector"),
]

VALID = [
    ("empty", {}),
    ("sampling-bounds", {"tracing": [{"randomSamplingPercentage": 0}]}),
    ("sampling-max", {"tracing": [{"randomSamplingPercentage": 100.0, "providers": [{"name": "zipkin"}]}]}),
    ("tags", {"tracing": [{"customTags": {"lit": {"literal": {"value": "v"}},
                                          "env": {"environment": {"name": "POD", "defaultValue": "x"}},
                                          "hdr": {"header": {"name": ":authority"}},
                                          "fmt": {"formatter": {"value": "%REQ(x)%"}}}}]}),
    ("metrics", {"selector": {"matchLabels": {"app": "reviews"}}, "metrics": [{
        "providers": [{"name": "prometheus"}], "reportingInterval": "15s",
        "overrides": [{"match": {"metric": "REQUEST_COUNT", "mode": "CLIENT"}, "disabled": False,
                       "tagOverrides": {"request_host": {"value": "request.host"},
                                        "source_app": {"operation": "REMOVE"}}},
                      {"match": {"customMetric": "my_metric"}, "disabled": True}]}]}),
    ("access-log", {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}],
                    "accessLogging": [{"providers": [{"name": "envoy"}], "match": {"mode": "SERVER"},
                                       "filter": {"expression": "response.code >= 400 || "
                                                                "request.headers['x-debug'] == 'true'"}},
                                      {"disabled": True}]}),
    ("target-ref-service", {"targetRef": {"kind": "Service", "name": "reviews"},
                            "tracing": [{"disableSpanReporting": True}]}),
]


def test_table_is_large_enough() -> None:
    assert len(INVALID) + len(SEMANTIC_ONLY) + len(VALID) >= 30


@pytest.mark.parametrize(("spec", "path", "phrase"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_document(spec: dict, path: str, phrase: str) -> None:
    errors, _ = pipeline(spec)
    assert any(p == path and phrase in m for p, m in errors), errors


@pytest.mark.parametrize(("spec", "path", "phrase"), [c[1:] for c in SEMANTIC_ONLY],
                         ids=[c[0] for c in SEMANTIC_ONLY])
def test_invalid_spec_semantic_rule(spec: dict, path: str, phrase: str) -> None:
    errors = semantic(spec)
    assert any(p == path and phrase in m for p, m in errors), errors


@pytest.mark.parametrize("spec", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_document(spec: dict) -> None:
    errors, _ = pipeline(spec)
    assert errors == []
    assert semantic(spec) == []


def test_multiple_tracing_entries_and_providers_warn() -> None:
    errors, warnings = pipeline({"tracing": [{"providers": [{"name": "a"}, {"name": "b"}]}, {}]})
    assert errors == []
    paths = {p for p, m in warnings if "not currently supported" in m}
    assert paths == {"spec.tracing", "spec.tracing[0].providers"}


def test_validator_ignores_specs_of_other_shapes() -> None:
    f = Findings()
    kinds.by_kind("Telemetry").validate("not a spec", None, f)  # type: ignore[arg-type]
    assert f.ok


def test_corpus_telemetry_documents_are_valid() -> None:
    paths = sorted(corpus_path("istio-validation-valid").glob("telemetry-*.yaml"))
    assert paths
    for path in paths:
        for doc in documents.read_paths([str(path)]):
            outcome = validate_document(doc.body, source=doc.source)
            assert outcome.errors == (), (path.name, outcome.errors)
            assert outcome.resource is not None
