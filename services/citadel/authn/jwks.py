"""Where token-verification keys come from: a JWKS held in memory, a file, or an URL.

The mesh's own issuer uses `FileJwks` (data dir `token-jwks.json`); a Kubernetes
issuer uses `HttpJwks` on its `/openid/v1/jwks`. Both are looked up by `kid`.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Protocol

import jwt


class JwksSource(Protocol):
    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (None when unknown). Without a kid, the only key, if one."""


def _pick(keys: dict[str | None, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def parse_jwks(doc: dict) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in doc.get("keys", []):
        try:
            key = jwt.PyJWK.from_dict(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, ValueError):
            continue  # skip key types we cannot use, as JWKS consumers do
        keys[entry.get("kid")] = key
    return keys


class StaticJwks:
    def __init__(self, doc: dict):
        self._keys = parse_jwks(doc)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        return _pick(self._keys, kid)


class FileJwks:
    """A JWKS file, re-read when it changes (so a new signing key is picked up)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._keys = parse_jwks(json.loads(self.path.read_text()))
            self._stamp = stamp
        return _pick(self._keys, kid)


class HttpJwks:
    """A remote JWKS (e.g. a Kubernetes API server's), cached for `ttl` seconds and
    refetched early, at most every `min_refresh` seconds, when an unknown kid shows up."""

    def __init__(self, url: str, *, ca_file: str | None = None, bearer_file: str | None = None,
                 ttl: float = 300.0, min_refresh: float = 10.0, timeout: float = 5.0):
        self.url, self.ca_file, self.bearer_file = url, ca_file, bearer_file
        self.ttl, self.min_refresh, self.timeout = ttl, min_refresh, timeout
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.ttl or (_pick(self._keys, kid) is None and age > self.min_refresh):
                self._fetched_at = time.monotonic()  # also rate-limits failed fetches
                self._keys = parse_jwks(await asyncio.to_thread(self._fetch))
        return _pick(self._keys, kid)

    def _fetch(self) -> dict:
        req = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        if self.bearer_file:
            req.add_header("Authorization", f"Bearer {Path(self.bearer_file).read_text().strip()}")
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.url.startswith("https") else None
        with urllib.request.urlopen(req, timeout=self.timeout, context=ctx) as resp:  # noqa: S310 (configured URL)
            return json.loads(resp.read())
