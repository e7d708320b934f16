"""Fixtures: in-process citadels on ephemeral ports (all stopped at teardown), clients, tokens."""
from __future__ import annotations

import time

import pytest

from isthmus.citadel.app import CitadelApp, CitadelConfig
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.spiffe import SpiffeId


@pytest.fixture
async def make_citadel(tmp_path):
    """`await make_citadel(clock=..., **CitadelConfig fields)` → a started CitadelApp."""
    apps: list[CitadelApp] = []

    async def factory(*, clock=None, **overrides) -> CitadelApp:
        fields = {"data_dir": tmp_path / "citadel", "listen": "127.0.0.1:0", "mtls_listen": "127.0.0.1:0",
                  **overrides}
        app = CitadelApp(CitadelConfig(**fields), clock=clock)
        await app.start()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.stop(grace=None)


@pytest.fixture
async def citadel(make_citadel) -> CitadelApp:
    return await make_citadel()


def mint(app: CitadelApp, identity: SpiffeId, ttl: int = 3600, now: float | None = None) -> str:
    return app.token_key.mint(identity, ttl, time.time() if now is None else now)


@pytest.fixture
async def make_client():
    """`make_client(app, identity=None, token=None)` → CitadelClient (closed at teardown)."""
    clients: list[CitadelClient] = []

    def factory(app: CitadelApp, identity: SpiffeId | None = None, token: str | None = None) -> CitadelClient:
        tok = token if token is not None else (mint(app, identity) if identity else None)
        client = CitadelClient(f"127.0.0.1:{app.port}", token=(lambda: tok) if tok else None,
                               mtls_address=f"127.0.0.1:{app.mtls_port}" if app.mtls_port else None)
        clients.append(client)
        return client

    yield factory
    for c in clients:
        await c.close()
