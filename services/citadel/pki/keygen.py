"""Workload key + CSR generation in a forked child, so the sidecar's agent never loads `cryptography`.

`generate_in_child(key_type, identity, dns_names)` forks; the child imports cryptography,
makes the key and the CSR exactly as the in-process path does (`KeyType.generate`,
`key_pem`, `make_csr`), writes one JSON answer into a pipe and `_exit`s, and its memory
goes with it. A fork rather than a new interpreter: a sidecar runs as the proxy uid,
which may not be allowed to execute the interpreter's path (a Python under /root, say),
and the child skips interpreter start-up. Any failure is a RuntimeError that says what
happened; the child is killed on timeout or cancellation.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import TYPE_CHECKING

from isthmus.citadel.spiffe import SpiffeId

if TYPE_CHECKING:
    from isthmus.citadel.pki.keys import KeyType


async def generate_in_child(key_type: KeyType | str, identity: SpiffeId, dns_names: tuple[str, ...] = (),
                            *, timeout: float = 30.0) -> tuple[bytes, str]:
    """(private key PEM, CSR PEM) made by a forked child."""
    request = {"key_type": getattr(key_type, "value", key_type), "trust_domain": identity.trust_domain,
               "namespace": identity.namespace, "service_account": identity.service_account,
               "dns_names": list(dns_names)}
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise RuntimeError(f"keygen: cannot fork: {exc}") from None
    if pid == 0:
        _child(request, r, w)  # never returns
    os.close(w)
    os.set_blocking(r, False)
    chunks: list[bytes] = []
    eof = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(r, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            chunks.append(data)
        elif not eof.done():
            eof.set_result(None)

    loop.add_reader(r, readable)
    finished = False
    try:
        async with asyncio.timeout(timeout):
            await eof
        finished = True
    except TimeoutError:
        raise RuntimeError(f"keygen: child {pid} did not answer within {timeout:g}s; killed it") from None
    finally:
        loop.remove_reader(r)
        os.close(r)
        if not finished:  # timed out or cancelled
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # the pipe is closed: it is exiting
    out = b"".join(chunks)
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        raise RuntimeError(f"keygen: child {how}")
    try:
        answer = json.loads(out)
        if "error" in answer:
            raise RuntimeError(f"keygen: {answer['error']}")
        key, csr = answer["key_pem"], answer["csr_pem"]
        if not (isinstance(key, str) and key.startswith("-----BEGIN PRIVATE KEY-----")
                and isinstance(csr, str) and csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")):
            raise ValueError("key_pem/csr_pem are not PEM")
    except (ValueError, TypeError, KeyError) as exc:
        raise RuntimeError(f"keygen: child sent no valid answer ({exc!r}); it starts {out[:200]!r}") from None
    return key.encode(), csr


def _child(request: dict, r: int, w: int) -> None:
    """In the forked child: answer {"key_pem", "csr_pem"} or {"error"}, then _exit."""
    code = 1
    try:
        os.close(r)
        for sig in (signal.SIGTERM, signal.SIGINT):  # the parent's loop handles these; not its child
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        try:
            answer = _generate(request)
        except KeyError as exc:
            answer = {"error": f"request: missing field {exc}"}
        except (ValueError, TypeError) as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(answer).encode()
        while data:
            data = data[os.write(w, data):]
        code = 0
    finally:
        os._exit(code)


def _generate(request: dict) -> dict[str, str]:
    """The child's work; imports cryptography (through keys and csr)."""
    from isthmus.citadel.pki.csr import make_csr
    from isthmus.citadel.pki.keys import KeyType, key_pem

    try:
        key_type = KeyType(request["key_type"])
    except ValueError:
        raise ValueError(f"key_type {request['key_type']!r}: must be one of "
                         f"{', '.join(k.value for k in KeyType)}") from None
    identity = SpiffeId(request["trust_domain"], request["namespace"], request["service_account"])
    dns_names = request.get("dns_names", [])
    if not isinstance(dns_names, list) or not all(isinstance(d, str) for d in dns_names):
        raise ValueError("dns_names: must be a list of strings")
    key = key_type.generate()
    return {"key_pem": key_pem(key).decode(), "csr_pem": make_csr(key, identity, tuple(dns_names))}
