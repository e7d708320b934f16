"""The workload certificate manager: renewal schedule, outages and expiry on a fake clock;
then rotation under real TLS traffic with a citadel restart, on the real clock."""
import asyncio
import random
import ssl
import time

import pytest

from isthmus.citadel.certmanager import CertificateManager, RenewalPolicy, backoff_delay
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.clock import FakeClock
from isthmus.citadel.tls import peer_identity, ssl_context

from .helpers import ALICE

QUIET = 1e9  # no trust-bundle polling between renewals


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.005)


async def step(clock: FakeClock, seconds: float) -> None:
    """Advance the fake clock, then wait until the manager is asleep again."""
    await clock.advance(seconds)
    await until(lambda: clock.pending == 1, what="manager asleep")


@pytest.fixture
async def managers():
    started: list[CertificateManager] = []

    def factory(app, clock=None, token_ttl=86400, **policy) -> CertificateManager:
        now = (clock.time if clock else time.time)
        client = CitadelClient(f"127.0.0.1:{app.port}", mtls_address=f"127.0.0.1:{app.mtls_port}",
                               token=lambda: app.token_key.mint(ALICE, token_ttl, now()), timeout=2.0)
        policy.setdefault("bundle_refresh", QUIET)
        mgr = CertificateManager(ALICE, client, policy=RenewalPolicy(**policy), clock=clock,
                                 rng=random.Random(7))
        mgr.start()
        started.append(mgr)
        return mgr

    yield factory
    for mgr in started:
        await mgr.stop()
        await mgr.client.close()


def test_backoff_is_capped_exponential_with_jitter():
    policy = RenewalPolicy(initial_backoff=1, max_backoff=8, jitter=0.5)
    rng = random.Random(1)
    for failures, base in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (20, 8)]:
        delays = {backoff_delay(failures, policy, rng) for _ in range(50)}
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(delays) > 1  # jittered


async def test_renews_at_half_life(make_citadel, managers):
    clock = FakeClock()
    app = await make_citadel(clock=clock)
    mgr = managers(app, clock, ttl=3600)
    first = await mgr.wait_ready(5)
    assert first.not_after - clock.time() == pytest.approx(3600, abs=1)
    await until(lambda: clock.pending == 1)
    assert clock.sleeps[-1] == pytest.approx(1800, abs=1)
    await step(clock, 1790)
    assert mgr.current() is first
    version = mgr.version
    await step(clock, 11)
    assert mgr.version > version
    second = mgr.current()
    assert second.serial != first.serial and second.key_pem != first.key_pem  # new key each time
    assert second.not_after - clock.time() == pytest.approx(3600, abs=1)
    assert mgr.ready and mgr.renewals == 2


async def test_outage_keeps_cert_until_expiry_then_unready_then_recovers(make_citadel, managers, tmp_path):
    clock = FakeClock()
    app = await make_citadel(clock=clock, min_ttl=1)
    mgr = managers(app, clock, ttl=120, initial_backoff=1, max_backoff=8, jitter=0.5)
    cert = await mgr.wait_ready(5)
    await until(lambda: clock.pending == 1)
    port = app.port
    await app.stop(grace=None)                      # citadel goes away
    await step(clock, clock.sleeps[-1])             # renewal time (half of 120 s): fails, backs off
    assert mgr.ready and mgr.current() is cert
    n = len(clock.sleeps)
    for _ in range(3):
        await step(clock, clock.sleeps[-1])
    backoffs = clock.sleeps[n - 1:]
    for delay, base in zip(backoffs, [1, 2, 4, 8]):
        assert base * 0.5 <= delay <= base          # exponential, jittered
    while clock.time() < cert.not_after:            # ride out the outage to expiry
        assert mgr.ready
        await step(clock, clock.sleeps[-1])
    assert not mgr.ready and mgr.current() is cert  # unready, but the last cert is still exposed
    # citadel comes back (same data dir, same port): the next retry succeeds
    await make_citadel(clock=clock, min_ttl=1, listen=f"127.0.0.1:{port}")
    await mgr.client.wait_connected(5)  # gRPC reconnects in real time; the fake clock must wait for it
    deadline = time.monotonic() + 10
    while not mgr.ready and time.monotonic() < deadline:
        await step(clock, clock.sleeps[-1])
    assert mgr.ready and mgr.current().serial != cert.serial


async def test_restart_before_expiry_never_makes_the_workload_unready(make_citadel, managers):
    clock = FakeClock()
    app = await make_citadel(clock=clock, min_ttl=1)
    mgr = managers(app, clock, ttl=120, initial_backoff=1, max_backoff=4)
    cert = await mgr.wait_ready(5)
    await until(lambda: clock.pending == 1)
    port = app.port
    await app.stop(grace=None)
    await step(clock, clock.sleeps[-1])
    await step(clock, clock.sleeps[-1])
    assert mgr.ready and mgr.current() is cert
    await make_citadel(clock=clock, min_ttl=1, listen=f"127.0.0.1:{port}")
    await mgr.client.wait_connected(5)  # gRPC reconnects in real time; the fake clock must wait for it
    deadline = time.monotonic() + 10
    while mgr.current() is cert and time.monotonic() < deadline:
        assert mgr.ready
        await step(clock, clock.sleeps[-1])
    assert mgr.current() is not cert and mgr.ready


async def test_renewal_over_mtls_when_the_token_has_expired(make_citadel, managers):
    clock = FakeClock()
    app = await make_citadel(clock=clock)
    mgr = managers(app, clock, token_ttl=60, ttl=3600, renew_with_mtls=True)
    await mgr.wait_ready(5)
    await until(lambda: clock.pending == 1)
    # the token source now mints tokens that are already expired on citadel's clock
    mgr.client.token = lambda: app.token_key.mint(ALICE, 60, clock.time() - 3600)
    await step(clock, 1801)
    assert mgr.renewals == 2
    assert app.metrics.value("citadel_certs_signed_total", auth="mtls") == 1


async def test_trust_bundle_changes_reach_the_workload(make_citadel, managers):
    from isthmus.citadel.pki.store import SelfSignedSource
    clock = FakeClock()
    app = await make_citadel(clock=clock)
    mgr = managers(app, clock, ttl=3600, bundle_refresh=60)
    cert = await mgr.wait_ready(5)
    await until(lambda: clock.pending == 1)
    SelfSignedSource(app.config.data_dir, app.trust_domain).rotate(time.time())
    app.refresh()
    await step(clock, 61)
    assert len(mgr.current().roots) == 2 and mgr.current().serial == cert.serial


async def test_key_is_written_only_when_asked(make_citadel, tmp_path):
    app = await make_citadel()
    client = CitadelClient(f"127.0.0.1:{app.port}", token=lambda: app.token_key.mint(ALICE, 600, time.time()))
    out = tmp_path / "certs"
    mgr = CertificateManager(ALICE, client, write_dir=out, policy=RenewalPolicy(bundle_refresh=QUIET))
    mgr.start()
    try:
        cert = await mgr.wait_ready(5)
    finally:
        await mgr.stop()
        await client.close()
    assert (out / "key.pem").read_bytes() == cert.key_pem
    assert (out / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (out / "root-cert.pem").read_bytes() == cert.roots_pem


# -- real clock, real TLS -------------------------------------------------------------------

async def test_rotation_under_tls_traffic_with_a_citadel_restart(make_citadel, managers):
    """TTL 4 s, renewal at half-life, citadel down from 0.5 s to 2.5 s: every request succeeds."""
    app = await make_citadel(min_ttl=1)
    mgr = managers(app, ttl=4, initial_backoff=0.1, max_backoff=0.4)
    await mgr.wait_ready(5)

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)

    def pick_current_cert(sslobj, server_name, ctx):  # every handshake gets the newest cert
        sslobj.context = ssl_context(mgr.current(), server_side=True)

    server_ctx.sni_callback = pick_current_cert
    served: set[int] = set()

    async def echo(reader, writer):
        served.add(mgr.current().serial)
        data = await reader.readline()
        writer.write(b"pong " + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    failures: list[str] = []
    requests = 0

    async def one_request() -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context(mgr.current(), server_side=False), server_hostname="alice")
        assert peer_identity(writer.get_extra_info("ssl_object")) == ALICE
        writer.write(b"ping\n")
        await writer.drain()
        assert await reader.readline() == b"pong ping\n"
        writer.close()

    async def traffic(seconds: float, until_renewals: int | None = None) -> None:
        nonlocal requests
        end = time.monotonic() + seconds
        while time.monotonic() < end and (until_renewals is None or mgr.renewals < until_renewals):
            try:
                await asyncio.wait_for(one_request(), 2)
            except Exception as exc:  # noqa: BLE001 — every failure is reported
                failures.append(repr(exc))
            requests += 1
            assert mgr.ready
            await asyncio.sleep(0.03)

    citadel_port = app.port
    await traffic(0.5)
    await app.stop(grace=None)                    # down across the first renewal (at ~2 s)
    await traffic(2.0)
    assert mgr.renewals == 1
    await make_citadel(min_ttl=1, listen=f"127.0.0.1:{citadel_port}")
    await traffic(6.0, until_renewals=3)          # renewed before the first cert expires (4 s),
    await traffic(0.3)                            # then once more on schedule
    server.close()
    await server.wait_closed()
    assert failures == []
    assert mgr.renewals >= 3 and len(served) >= 3, (mgr.renewals, served)
    assert requests > 50
