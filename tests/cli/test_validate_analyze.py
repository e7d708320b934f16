"""`isthmus validate` and `isthmus analyze -f` work offline with istioctl's exit codes."""
from __future__ import annotations

import subprocess
import textwrap

from tests.conftest import corpus_path
from tests.helpers.procs import ISTHMUS


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ISTHMUS, *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_validate_corpus_is_valid():
    res = run("validate", "-f", str(corpus_path("istio-samples", "bookinfo", "networking")), "-f", str(corpus_path("istio-validation-valid")))
    assert res.returncode == 0, res.stderr
    assert "resources valid" in res.stdout


BAD = textwrap.dedent("""\
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: reviews
    spec:
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
          weight: -5
        - destination: {host: reviews, subset: v2}
          weight: 105
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: ok}
    spec: {host: reviews}
    """)


def test_validate_reports_every_error_and_exits_1():
    res = run("validate", "-f", "-", stdin=BAD)
    assert res.returncode == 1
    assert "VirtualService default/reviews: spec.http[0].route[0].weight" in res.stderr
    assert "1 of 2 resources invalid" in res.stderr


def test_validate_yaml_syntax_error_names_the_line():
    res = run("validate", "-f", "-", stdin="kind: VirtualService\nmetadata: [a\n")
    assert res.returncode == 1
    assert "<stdin>:" in res.stderr and "YAML syntax error" in res.stderr


def test_validate_missing_file():
    res = run("validate", "-f", "/nonexistent.yaml")
    assert res.returncode == 1 and "no such file" in res.stderr


def test_validate_kind_list_is_expanded():
    doc = textwrap.dedent("""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: networking.istio.io/v1beta1
          kind: DestinationRule
          metadata: {name: a}
          spec: {host: a}
        - apiVersion: security.istio.io/v1
          kind: PeerAuthentication
          metadata: {name: default}
          spec: {mtls: {mode: STRICT}}
        """)
    res = run("validate", "-f", "-", stdin=doc)
    assert res.returncode == 0, res.stderr
    assert "2 resources valid" in res.stdout


ANALYZE = textwrap.dedent("""\
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews, creationTimestamp: "2024-01-01T00:00:00Z"}
    spec:
      hosts: [reviews]
      gateways: [missing-gateway, mesh]
      http:
      - route:
        - destination: {host: reviews, subset: v9}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews-second}
    spec:
      hosts: [reviews.default.svc.cluster.local]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews}
    spec:
      host: reviews
      subsets: [{name: v1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: ghost}
    spec: {host: ghost}
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews}
    spec:
      hosts: [reviews.default.svc.cluster.local]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      location: MESH_INTERNAL
      endpoints: [{address: 127.0.0.1}]
    """)


def test_analyze_finds_the_classic_mistakes():
    res = run("analyze", "-f", "-", stdin=ANALYZE)
    assert res.returncode == 1
    out = res.stdout
    assert 'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v9"' in out
    assert 'Error [IST0101] (VirtualService default/reviews) Referenced gateway not found: "missing-gateway"' in out
    assert "IST0109" in out and "default/reviews,default/reviews-second" in out
    assert 'Warning [IST0101] (DestinationRule default/ghost) Referenced host not found: "ghost"' in out
    assert "(DestinationRule default/reviews)" not in out


def test_analyze_clean_config_exits_0():
    res = run("analyze", "-f", "-", stdin=ANALYZE.split("---")[2] + "---" + ANALYZE.split("---")[4])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No validation issues found" in res.stdout
