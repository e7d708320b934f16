"""The workload certificate manager the proxy agent runs (Istio's SecretManager).

Keeps a key (generated in memory, written to disk only if `write_dir` is set) and
its certificate chain from citadel; renews at `renew_fraction` of the remaining
lifetime; publishes each new cert so new connections use it without a restart;
while citadel is down, retries with jittered exponential backoff and keeps the
current cert until it expires, then reports unready. All timing goes through a `Clock`.
Keys and CSRs come from `keys` (in this process by default; the sidecar's agent makes
them in a child process, pki/keygen.py, so it never loads `cryptography`); issued
certificates are read with pki/der.py.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from isthmus.citadel.client import CitadelClient
from isthmus.citadel.clock import Clock, SystemClock
from isthmus.citadel.pki.der import parse_pem
from isthmus.citadel.pki.keys import KeyType, write_private, write_public
from isthmus.citadel.spiffe import SpiffeId
from isthmus.shared.logging import get_logger
from isthmus.shared.service.grpc_client import RpcError, describe

log = get_logger(__name__)


@dataclass(frozen=True)
class WorkloadCert:
    """One issued identity: what the data plane serves and trusts."""

    identity: SpiffeId
    key_pem: bytes
    chain: tuple[str, ...]  # as citadel returned it: leaf first, root last
    roots: tuple[str, ...]  # the trust bundle
    not_before: float
    not_after: float
    serial: int

    @property
    def cert_chain_pem(self) -> bytes:
        """Leaf and intermediates: what a TLS endpoint presents (peers hold the roots)."""
        certs = list(self.chain)
        if len(certs) > 1 and parse_pem(certs[-1])[0].self_issued:
            certs.pop()
        return "".join(certs).encode()

    @property
    def roots_pem(self) -> bytes:
        return "".join(self.roots).encode()

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now < self.not_after


@dataclass(frozen=True)
class RenewalPolicy:
    ttl: int = 24 * 3600  # requested lifetime (citadel clamps it)
    renew_fraction: float = 0.5  # renew when this share of the remaining lifetime has passed
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.5  # each delay is scaled by a random factor in [1 - jitter, 1]
    bundle_refresh: float = 300.0  # poll the trust bundle this often between renewals
    key_type: KeyType = KeyType.EC_P256
    renew_with_mtls: bool = False  # authenticate renewals with the current cert when valid

    def __post_init__(self) -> None:
        if not 0 < self.renew_fraction < 1:
            raise ValueError(f"renew_fraction must be in (0, 1) (got {self.renew_fraction})")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1) (got {self.jitter})")


# (key type, identity, extra DNS SANs) → (private key PEM, CSR PEM)
KeyMaker = Callable[[KeyType, SpiffeId, "tuple[str, ...]"], Awaitable["tuple[bytes, str]"]]


async def keys_in_process(key_type: KeyType, identity: SpiffeId, dns_names: tuple[str, ...]) -> tuple[bytes, str]:
    from isthmus.citadel.pki.csr import make_csr
    from isthmus.citadel.pki.keys import key_pem

    key = await asyncio.to_thread(key_type.generate)
    return key_pem(key), make_csr(key, identity, dns_names)


def backoff_delay(failures: int, policy: RenewalPolicy, rng: random.Random) -> float:
    """Capped exponential backoff, scaled down by a random jitter factor."""
    base = min(policy.max_backoff, policy.initial_backoff * 2 ** max(0, failures - 1))
    return base * (1 - policy.jitter * rng.random())


def renew_time(cert: WorkloadCert, received_at: float, fraction: float) -> float:
    return received_at + fraction * max(0.0, cert.not_after - received_at)


class CertificateManager:
    def __init__(self, identity: SpiffeId, client: CitadelClient, *, policy: RenewalPolicy | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None, write_dir: Path | None = None,
                 dns_names: tuple[str, ...] = (), keys: KeyMaker = keys_in_process):
        self.identity = identity
        self.dns_names = tuple(dns_names)  # extra CSR SANs (istiod's hostnames; citadel refuses them to others)
        self.client = client
        self.keys = keys
        self.policy = policy or RenewalPolicy()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.write_dir = Path(write_dir) if write_dir else None
        self._cert: WorkloadCert | None = None
        self._renew_at = 0.0
        self._failures = 0
        self._expired_reported = False
        self._version = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.renewals = 0  # successful fetches, for tests and debug pages

    # -- what the data plane reads -------------------------------------------------
    def current(self) -> WorkloadCert | None:
        """The latest certificate (check `ready` before serving with it)."""
        return self._cert

    @property
    def ready(self) -> bool:
        return self._cert is not None and self._cert.valid_at(self.clock.time())

    @property
    def version(self) -> int:
        """Bumped on every new certificate or trust bundle."""
        return self._version

    async def wait_changed(self, seen: int) -> int:
        while self._version == seen:
            await self._changed.wait()
        return self._version

    async def wait_ready(self, timeout: float) -> WorkloadCert:
        async def _wait() -> WorkloadCert:
            while not self.ready:
                await self.wait_changed(self._version)
            return self._cert  # type: ignore[return-value]
        return await asyncio.wait_for(_wait(), timeout)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"certmanager {self.identity}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            now = self.clock.time()
            try:
                if self._cert is None or now >= self._renew_at:
                    await self._renew()
                else:
                    await self._refresh_bundle()
                self._failures = 0
                delay = max(0.0, min(self._renew_at, self.clock.time() + self.policy.bundle_refresh)
                            - self.clock.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — any failure is retried; the reason is logged
                self._failures += 1
                delay = backoff_delay(self._failures, self.policy, self.rng)
                if self._cert is not None and self._cert.valid_at(now):
                    # wake in time to renew, and to report expiry
                    delay = min(delay, max(0.0, self._cert.not_after - now))
                    if self._renew_at > now:
                        delay = min(delay, self._renew_at - now)
                log.warning("certificate fetch failed; retrying", identity=self.identity.uri,
                            error=describe(exc), failures=self._failures, retry_in=round(delay, 3),
                            current_valid_for=round(self._cert.not_after - now, 1) if self._cert else None)
            self._report_expiry()
            await self.clock.sleep(delay)

    # -- one step ---------------------------------------------------------------------
    async def _renew(self) -> None:
        key, csr = await self.keys(self.policy.key_type, self.identity, self.dns_names)
        current = self._cert
        chain: list[str] | None = None
        if self.policy.renew_with_mtls and current is not None and current.valid_at(self.clock.time()) \
                and self.client.mtls_address:
            try:
                chain = await self.client.renew_with_certificate(
                    csr, self.policy.ttl, key_pem=current.key_pem, chain_pem=current.cert_chain_pem,
                    roots_pem=current.roots_pem)
            except RpcError as exc:
                if self.client.token is None:
                    raise
                log.info("mTLS renewal failed; falling back to the token", error=describe(exc))
        if chain is None:
            chain = await self.client.create_certificate(csr, self.policy.ttl)
        bundle = await self.client.trust_bundle()
        leaf = parse_pem(chain[0])[0]
        cert = WorkloadCert(self.identity, key, tuple(chain), bundle.roots, leaf.not_before, leaf.not_after,
                            leaf.serial)
        now = self.clock.time()
        self._renew_at = renew_time(cert, now, self.policy.renew_fraction)
        self._cert = cert
        self._expired_reported = False
        self.renewals += 1
        self._write_files(cert)
        self._publish()
        log.info("certificate installed", identity=self.identity.uri, serial=f"{cert.serial:x}",
                 expires_in=round(cert.not_after - now, 1), renew_in=round(self._renew_at - now, 1))

    async def _refresh_bundle(self) -> None:
        bundle = await self.client.trust_bundle()
        cert = self._cert
        if cert is not None and bundle.roots != cert.roots:
            self._cert = WorkloadCert(cert.identity, cert.key_pem, cert.chain, bundle.roots, cert.not_before,
                                      cert.not_after, cert.serial)
            self._write_files(self._cert)
            self._publish()
            log.info("trust bundle updated", roots=len(bundle.roots), version=bundle.version)

    def _report_expiry(self) -> None:
        if self._cert is not None and not self.ready and not self._expired_reported:
            self._expired_reported = True
            log.error("certificate expired and citadel is unreachable; workload is unready",
                      identity=self.identity.uri)
            self._publish()

    def _publish(self) -> None:
        self._version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _write_files(self, cert: WorkloadCert) -> None:
        if self.write_dir is None:
            return
        self.write_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.write_dir / "key.pem", cert.key_pem)
        write_public(self.write_dir / "cert-chain.pem", cert.cert_chain_pem)
        write_public(self.write_dir / "root-cert.pem", cert.roots_pem)
