"""The command line: argument checks, and one app run as a real process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from isthmus.samples.bookinfo import topology
from isthmus.samples.bookinfo.__main__ import build_app, parse_args
from isthmus.samples.bookinfo.productpage import CONFIG as PAGE_CONFIG
from isthmus.samples.bookinfo.reviews import CONFIG as REVIEWS_CONFIG


def test_parse_args_defaults_and_urls() -> None:
    args = parse_args(["reviews", "--version", "v3", "--port", "19083", "--ratings-url", "http://127.0.0.1:1"])
    assert (args.app, args.version, args.port, args.host) == ("reviews", "v3", 19083, "127.0.0.1")
    config = build_app(args)[REVIEWS_CONFIG]
    assert (config.version, config.ratings_url, config.star_color) == ("v3", "http://127.0.0.1:1", "red")
    page = build_app(parse_args(["productpage"]))[PAGE_CONFIG]
    assert (page.details_url, page.reviews_url, page.ratings_url) == (
        "http://details:9080", "http://reviews:9080", "http://ratings:9080")


def test_services_domain_as_istio(monkeypatch) -> None:
    monkeypatch.setenv("SERVICES_DOMAIN", "default.svc.cluster.local")
    assert parse_args(["productpage"]).details_url == "http://details.default.svc.cluster.local:9080"


def test_unknown_version_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["details", "--version", "v2"])
    assert "details has no version 'v2'" in capsys.readouterr().err


def test_topology_argv() -> None:
    reviews_v2 = next(a for a in topology.APPS if a.workload_group == "reviews-v2")
    argv = reviews_v2.argv(19082, urls={"ratings": "http://127.0.0.1:9", "details": "ignored"})
    assert argv[1:] == ("-m", "isthmus.samples.bookinfo", "reviews", "--version", "v2", "--port", "19082",
                        "--host", "127.0.0.1", "--ratings-url", "http://127.0.0.1:9")
    parse_args(argv[3:])  # the launcher's command line parses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_serves_and_logs_one_line_per_request() -> None:
    ratings = next(a for a in topology.APPS if a.name == "ratings")
    port = _free_port()
    env = {**os.environ, "ISTHMUS_LOG_FORMAT": "json"}
    proc = subprocess.Popen(ratings.argv(port), env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ratings/0", timeout=1) as resp:
                    assert json.load(resp) == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "ratings did not start"
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["event"] == "request"]
    assert requests == [requests[0]] and requests[0]["path"] == "/ratings/0" and requests[0]["status"] == 200
    assert requests[0]["component"] == "ratings-v1"
