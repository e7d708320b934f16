"""Parity: the same requests through a Python-engine sidecar and an Envoy sidecar,
configured by the same pilot, give the same status codes, chosen backends, headers and
response flags (read from each proxy's access log)."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.backends import Backend
from tests.helpers.mesh import LocalMesh, wait_until
from tests.pilot.envoy_validate import needs_envoy

pytestmark = [needs_envoy, pytest.mark.envoy]

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: v1}}, ports: {{http: {v1}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: v2}}, ports: {{http: {v2}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-broken}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: broken}}, ports: {{http: {closed}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-failing}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: failing}}, ports: {{http: {failing}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v9, labels: {{version: v9}}}}
  - {{name: broken, labels: {{version: broken}}}}
  - {{name: failing, labels: {{version: failing}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    headers:
      request: {{set: {{x-routed: jason}}}}
      response: {{add: {{x-answered: by-v2}}}}
    route: [{{destination: {{host: reviews, subset: v2}}}}]
  - match: [{{uri: {{exact: /teapot}}}}]
    directResponse: {{status: 418, body: {{string: "short and stout"}}}}
  - match: [{{uri: {{prefix: /moved}}}}]
    redirect: {{uri: /new-home, redirectCode: 302}}
  - match: [{{uri: {{prefix: /abort}}}}]
    fault: {{abort: {{httpStatus: 503, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: reviews, subset: v1}}}}]
  - match: [{{uri: {{prefix: /nohost}}}}]
    route: [{{destination: {{host: reviews, subset: v9}}}}]
  - match: [{{uri: {{prefix: /closed}}}}]
    retries: {{attempts: 0}}
    route: [{{destination: {{host: reviews, subset: broken}}}}]
  - match: [{{uri: {{prefix: /flaky}}}}]
    retries: {{attempts: 2, retryOn: 5xx}}
    route: [{{destination: {{host: reviews, subset: failing}}}}]
  - match: [{{uri: {{prefix: /api}}}}]
    rewrite: {{uri: /v2api}}
    route: [{{destination: {{host: reviews, subset: v1}}}}]
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
"""

REQUESTS = [
    ("default route", "/", {}),
    ("header route + header ops", "/x", {"end-user": "jason"}),
    ("direct response", "/teapot", {}),
    ("redirect", "/moved/here", {}),
    ("fault abort", "/abort", {}),
    ("no healthy upstream", "/nohost", {}),
    ("connect failure", "/closed", {}),
    ("retries exhausted", "/flaky", {}),
    ("rewrite", "/api/items", {}),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    backends = {n: Backend(n).start() for n in ("reviews-v1", "reviews-v2")}
    failing = Backend("reviews-failing", fail_status=503).start()
    closed = 1  # tcpmux: nothing listens there, and no test can take it meanwhile
    m = LocalMesh(tmp_path_factory.mktemp("parity")).start_control_plane()
    try:
        m.apply(CONFIG.format(v1=backends["reviews-v1"].port, v2=backends["reviews-v2"].port, closed=closed, failing=failing.port))
        py = m.add_sidecar("client-python", labels={"app": "client", "version": "py"}, engine="python")
        env = m.add_sidecar("client-envoy", labels={"app": "client", "version": "envoy"}, engine="envoy")
        m.wait_converged()
        for sc in (py, env):
            wait_until(lambda sc=sc: sc.proxy_get("http://reviews:9080/teapot")[0] == 418, 15, f"{sc.name} configured")
        yield m, py, env
    finally:
        m.close()
        for b in (*backends.values(), failing):
            b.stop()


def _rid_key(request_id: str) -> str:
    """The request id without its 15th character: Envoy packs its trace decision there
    ('4' → '9' when randomly sampled, Istio samples 1%), so a logged id may differ in it."""
    return request_id[:14] + request_id[15:]


def _flags(log_path, request_id: str) -> str:
    key = _rid_key(request_id)
    for line in log_path.read_text(errors="replace").splitlines():
        if request_id[:14] in line and line.lstrip().startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if _rid_key(str(entry.get("request_id"))) == key:
                return entry.get("response_flags") or "-"
    return "<no access log>"


def _send(sidecar, path: str, headers: dict) -> dict:
    rid = str(uuid.uuid4())
    status, resp_headers, body = sidecar.proxy_get(f"http://reviews:9080{path}", headers={**headers, "x-request-id": rid})
    lower = {k.lower(): v for k, v in resp_headers.items()}
    backend = seen_path = routed = None
    if lower.get("content-type") == "application/json":
        data = json.loads(body)
        backend, seen_path, routed = data["backend"], data["path"], data["headers"].get("x-routed")
    return {
        "status": status,
        "backend": backend,
        "path_at_backend": seen_path,
        "x-routed": routed,
        "location": lower.get("location"),
        "x-answered": lower.get("x-answered"),
        "body": body if status == 418 else None,
        "request_id": rid,
    }


@pytest.fixture(scope="module")
def observed(pair):
    """Every request through both engines, then each proxy's flags from its access log
    (proxies flush access logs on their own schedule, so read them once at the end)."""
    _, py, env = pair
    out = {}
    for what, path, headers in REQUESTS:
        out[what] = {"python": _send(py, path, headers), "envoy": _send(env, path, headers)}
    for engine, sidecar in (("python", py), ("envoy", env)):
        rids = [out[w][engine]["request_id"] for w in out]
        wait_until(lambda: all(_flags(sidecar.log, r) != "<no access log>" for r in rids), 20, f"{engine} access log")
        for w in out:
            entry = out[w][engine]
            entry["flags"] = _flags(sidecar.log, entry.pop("request_id"))
    return out


@pytest.mark.parametrize("what", [r[0] for r in REQUESTS])
def test_same_outcome_on_both_engines(observed, what):
    got = observed[what]
    assert got["python"] == got["envoy"], f"{what}: python={got['python']} envoy={got['envoy']}"


def test_expected_outcomes_are_envoys(observed):
    """The shared outcome is Envoy's documented one (not two identical mistakes)."""
    env = {w: o["envoy"] for w, o in observed.items()}
    assert (env["fault abort"]["status"], env["fault abort"]["flags"]) == (503, "FI")
    assert (env["no healthy upstream"]["status"], env["no healthy upstream"]["flags"]) == (503, "UH")
    assert (env["connect failure"]["status"], env["connect failure"]["flags"]) == (503, "UF")
    assert env["retries exhausted"]["status"] == 503 and "URX" in env["retries exhausted"]["flags"]
    assert env["direct response"]["status"] == 418 and env["redirect"]["status"] == 302
    assert env["rewrite"]["path_at_backend"] == "/v2api/items"
    assert env["header route + header ops"]["backend"] == "reviews-v2"


TRACE_CASES = [  # (request id sent, extra headers): Istio samples 1%, decided per request id
    ("00000063-aaaa-4aaa-8aaa-aaaa0000ffff", {}),  # 99 mod 10000 < 100: sampled, '9' packed in
    ("0000ffff-aaaa-4aaa-8aaa-aaaa00000002", {}),  # only the first 8 digits count: not sampled
    ("0000ffff-aaaa-9aaa-8aaa-aaaa0000ffff", {}),  # an earlier hop's decision stands
    ("0000ffff-aaaa-4aaa-8aaa-aaaa0000fff1", {"x-client-trace-id": "c1"}),  # client-forced: 'b'
    ("0000ffff-aaaa-4aaa-8aaa-aaaa0000fff0", {"x-envoy-force-trace": "true"}),  # the app's own: not honoured
    ("not-a-uuid", {}),
]
CONTROL = {"x-envoy-retry-on": "5xx", "x-envoy-max-retries": "1", "x-envoy-upstream-rq-timeout-ms": "9000",
           "x-envoy-ip-tags": "t", "x-envoy-internal": "true", "x-envoy-original-path": "/p",
           "x-envoy-decorator-operation": "op", "x-envoy-retriable-status-codes": "503"}


def _seen(sidecar, rid: str, headers: dict) -> tuple[str, list[str]]:
    status, _, body = sidecar.proxy_get("http://reviews:9080/", headers={**headers, "x-request-id": rid})
    assert status == 200, body[:300]
    got = json.loads(body)["headers"]
    return got.get("x-request-id"), sorted(k for k in got if k.startswith("x-envoy-") and k != "x-envoy-attempt-count")


def test_request_id_trace_decision_and_control_headers_match_envoy(pair):
    _, py, env = pair
    for rid, headers in TRACE_CASES:
        assert _seen(py, rid, headers) == _seen(env, rid, headers), (rid, headers)
    assert _seen(env, *TRACE_CASES[0])[0] == "00000063-aaaa-9aaa-8aaa-aaaa0000ffff"
    assert _seen(env, *TRACE_CASES[3])[0][14] == "b"
    python_view, envoy_view = _seen(py, "0000ffff-aaaa-4aaa-8aaa-aaaa0000ffff", CONTROL), \
        _seen(env, "0000ffff-aaaa-4aaa-8aaa-aaaa0000ffff", CONTROL)
    assert python_view == envoy_view
    assert envoy_view[1] == ["x-envoy-decorator-operation", "x-envoy-original-path"]
