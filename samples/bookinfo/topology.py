"""The Bookinfo workloads the launcher starts: one `App` per deployment of Istio's bookinfo.yaml.

Each app serves HTTP on one port (9080 in a pod; the launcher picks one locally), is
labelled `app`/`version`, runs as service account `bookinfo-<app>`, and registers into
WorkloadGroup `<app>-<version>` of `platform/local.yaml`. `App.argv` is its command line.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from isthmus.samples.bookinfo.common import SERVICE_PORT

HERE = Path(__file__).resolve().parent
NETWORKING_DIR = HERE / "networking"  # our bookinfo-gateway.yaml, destination-rule-all.yaml
LOCAL_PLATFORM = HERE / "platform" / "local.yaml"  # ServiceEntry + WorkloadGroups, applied by `isthmus up`
NAMESPACE = "default"


@dataclass(frozen=True)
class App:
    name: str  # the service: productpage, details, reviews, ratings
    version: str
    service_account: str
    labels: Mapping[str, str] = field(compare=False)
    calls: tuple[str, ...] = ()  # services this app calls
    port: int = SERVICE_PORT  # the service port; the app's own listen port is argv's
    health_path: str = "/health"

    @property
    def workload_group(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def host(self) -> str:
        return f"{self.name}.{NAMESPACE}.svc.cluster.local"

    def argv(self, port: int, host: str = "127.0.0.1", urls: Mapping[str, str] | None = None,
             python: str = sys.executable) -> tuple[str, ...]:
        """Command line listening on host:port; `urls` overrides upstream base URLs by service name
        (only those this app calls are passed)."""
        args = [python, "-m", "isthmus.samples.bookinfo", self.name, "--version", self.version,
                "--port", str(port), "--host", host]
        for service in self.calls:
            if urls and service in urls:
                args += [f"--{service}-url", urls[service]]
        return tuple(args)


def _app(name: str, version: str, calls: tuple[str, ...] = ()) -> App:
    return App(name, version, f"bookinfo-{name}", {"app": name, "version": version}, calls)


APPS: tuple[App, ...] = (
    _app("productpage", "v1", ("details", "reviews", "ratings")),
    _app("details", "v1"),
    _app("reviews", "v1"),
    _app("reviews", "v2", ("ratings",)),
    _app("reviews", "v3", ("ratings",)),
    _app("ratings", "v1"),
)
SERVICES: tuple[str, ...] = tuple(dict.fromkeys(app.name for app in APPS))
