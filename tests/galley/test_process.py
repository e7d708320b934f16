"""`isthmus galley` as a real process: restart durability on SQLite, the CLI against it."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from isthmus.shared.protos import galley_pb2, galley_pb2_grpc
from tests.conftest import corpus_path
from tests.helpers.procs import ISTHMUS, free_port, running, tcp_ready


def _galley(tmp_path: Path, store: str, port: int):
    mon = free_port()
    return running(
        [*ISTHMUS, "galley", "--listen", f"127.0.0.1:{port}", "--monitoring", f"127.0.0.1:{mon}", "--store", store],
        tmp_path / "galley.log",
        tcp_ready(port),
    )


def cli(*args: str, galley: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ISTHMUS, *args, "--galley", galley], capture_output=True, text=True, input=stdin, timeout=60)


def test_sqlite_galley_survives_restart_and_watch_resumes(tmp_path):
    port = free_port()
    store = f"sqlite:///{tmp_path / 'config.db'}"
    networking = corpus_path("istio-samples", "bookinfo", "networking")
    with _galley(tmp_path, store, port):
        res = cli("apply", "-f", str(networking / "destination-rule-all.yaml"), galley=f"127.0.0.1:{port}")
        assert res.returncode == 0, res.stderr
        assert "destinationrule.networking.istio.io/reviews created" in res.stdout
        listed = cli("get", "dr", "-o", "json", galley=f"127.0.0.1:{port}")
        revision_before = max(int(i["metadata"]["resourceVersion"]) for i in json.loads(listed.stdout)["items"])
    with _galley(tmp_path, store, port):
        res = cli("get", "dr", galley=f"127.0.0.1:{port}")
        assert res.returncode == 0, res.stderr
        assert [line.split()[0] for line in res.stdout.splitlines()[1:]] == ["details", "productpage", "ratings", "reviews"]
        cli("apply", "-f", str(networking / "virtual-service-all-v1.yaml"), galley=f"127.0.0.1:{port}")
        # A watcher that was at `revision_before` resumes and gets exactly the new objects.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = galley_pb2_grpc.ConfigServiceStub(ch)
            call = stub.Watch(galley_pb2.WatchRequest(since_revision=revision_before), timeout=10)
            names = []
            for ev in call:
                names.append((ev.type, ev.resource.kind, ev.resource.name))
                if len(names) == 4:
                    call.cancel()
                    break
        assert {n for _, _, n in names} == {"productpage", "reviews", "ratings", "details"}
        assert {k for _, k, _ in names} == {"VirtualService"}


def test_cli_apply_get_delete_and_errors(tmp_path):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    networking = corpus_path("istio-samples", "bookinfo", "networking")
    with _galley(tmp_path, "memory://", port):
        res = cli("apply", "-f", str(networking), galley=addr)
        assert res.returncode == 0, res.stderr
        res = cli("get", "vs", "-A", galley=addr)
        assert res.returncode == 0
        lines = res.stdout.splitlines()
        assert lines[0].split() == ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS", "AGE"]
        assert {l.split()[1] for l in lines[1:]} >= {"bookinfo", "details", "productpage", "ratings", "reviews"}
        res = cli("get", "gw", "bookinfo-gateway", "-o", "yaml", galley=addr)
        assert "kind: Gateway" in res.stdout and "istio: ingressgateway" in res.stdout
        res = cli("get", "vs", "nope", galley=addr)
        assert res.returncode == 1
        assert 'Error from server (NotFound): virtualservices.networking.istio.io "nope" not found' in res.stderr
        bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: -5\n"
        res = cli("apply", "-f", "-", galley=addr, stdin=bad)
        assert res.returncode == 1
        assert "VirtualService default/bad: spec.http[0].route[0].weight" in res.stderr
        assert cli("get", "vs", "bad", galley=addr).returncode == 1
        res = cli("delete", "vs", "reviews", galley=addr)
        assert res.returncode == 0 and 'virtualservice.networking.istio.io "reviews" deleted' in res.stdout
        res = cli("delete", "-f", str(networking / "bookinfo-gateway.yaml"), galley=addr)
        assert res.returncode == 0, res.stderr
        remaining = cli("get", "gw", "-A", galley=addr).stdout
        assert "bookinfo-gateway" not in remaining and "cert-manager-gateway" in remaining
        assert cli("get", "gw", galley=addr).stderr.startswith("No resources found in default namespace")


def test_cli_reports_unreachable_galley():
    port = free_port()
    res = cli("get", "vs", galley=f"127.0.0.1:{port}")
    assert res.returncode == 1
    assert f"cannot reach galley at 127.0.0.1:{port}" in res.stderr
