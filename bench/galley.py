"""Galley benchmark: applies per second (SQLite and etcd) and watch fan-out latency.

Galley runs as a process on the proxy CPU with each store; a client applies one
ServiceEntry per call (1 and 16 in flight), then 100 Watch streams see each of a few
VirtualService applies and the time from the apply to each watcher's event is taken.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench import procs
from bench.controlplane import NAMESPACE, _to_protos, service_entry, start_galley, virtual_service
from bench.stats import percentile


async def _galley_rates(galley: str, seconds: float, watchers: int, events: int) -> dict:
    import grpc

    from isthmus.galley.client import AsyncGalleyClient
    from isthmus.shared.protos import galley_pb2, galley_pb2_grpc

    client = AsyncGalleyClient(galley, timeout=30)
    out: dict = {}
    try:
        doc = lambda i: _to_protos([service_entry(i)])  # noqa: E731
        for in_flight in (1, 16):
            n, stop_at = 0, time.perf_counter() + seconds
            base = 5000 + in_flight * 100_000

            async def worker(w: int) -> None:
                nonlocal n
                i = 0
                while time.perf_counter() < stop_at:
                    await client.apply(doc(base + w * 10_000 + i % 10_000))
                    i += 1
                    n += 1
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(in_flight)))
            out[f"applies_per_s_{in_flight}_in_flight"] = round(n / (time.perf_counter() - t0), 1)

        channel = grpc.aio.insecure_channel(galley)
        stub = galley_pb2_grpc.ConfigServiceStub(channel)
        revision = (await stub.List(galley_pb2.ListRequest(kind="ServiceEntry", namespace=NAMESPACE))).revision
        seen: list[dict[str, float]] = [dict() for _ in range(watchers)]
        ready = [asyncio.Event() for _ in range(watchers)]

        async def watcher(k: int) -> None:
            call = stub.Watch(galley_pb2.WatchRequest(since_revision=revision, kinds=["VirtualService"]))
            ready[k].set()
            async for ev in call:
                name = ev.resource.name if ev.HasField("resource") else ""
                if name.startswith("fanout-"):
                    seen[k].setdefault(name, time.perf_counter())
        tasks = [asyncio.get_running_loop().create_task(watcher(k)) for k in range(watchers)]
        await asyncio.gather(*(e.wait() for e in ready))
        await asyncio.sleep(0.5)
        lat: list[float] = []
        for e in range(events):
            name = f"fanout-{e}"
            vs = virtual_service("x")
            vs["metadata"]["name"] = name
            t0 = time.perf_counter()
            await client.apply(_to_protos([vs]))
            deadline = time.monotonic() + 30
            while sum(name in s for s in seen) < watchers:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"watch fan-out: {sum(name in s for s in seen)}/{watchers} watchers saw {name}")
                await asyncio.sleep(0.001)
            lat += [s[name] - t0 for s in seen]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
        lat.sort()
        out["watch_fanout"] = {"watchers": watchers, "events": events, "p50_ms": round(percentile(lat, 50) * 1e3, 2),
                               "p99_ms": round(percentile(lat, 99) * 1e3, 2), "max_ms": round(lat[-1] * 1e3, 2)}
    finally:
        await client.close()
    return out


def galley_bench(seconds: float, watchers: int, events: int, log: Callable[[str], None],
                 run_dir: Path | None = None) -> dict:
    pin = procs.Pinning.detect()
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="isthmus-bench-galley-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"seconds": seconds, "pinning": f"galley on CPU {pin.proxy}, clients (and etcd) on CPU {pin.load}"
                     if pin.proxy is not None else pin.note}
    from bench.machine import which

    stores = {"sqlite": None, "etcd": which("etcd")}
    for store, binary in stores.items():
        sup = procs.Supervisor(run_dir)
        try:
            if store == "sqlite":
                url = f"sqlite:///{run_dir / 'galley-bench.db'}"
            elif binary is None:
                results[store] = {"unavailable": "etcd binary not found (Debian package etcd-server)"}
                continue
            else:
                port, peer = procs.free_port(), procs.free_port()
                client_url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
                sup.start("etcd", [binary, "--name", "bench", "--data-dir", str(run_dir / "etcd-data"),
                                   "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                                   "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                                   "--initial-cluster", f"bench={peer_url}"],
                          procs.http_ready(f"{client_url}/health"), timeout=30, cpu=pin.load)
                url = f"etcd://127.0.0.1:{port}"
            galley = start_galley(sup, url, pin.proxy, name=f"galley-{store}")
            with procs.affinity(pin.load):
                results[store] = asyncio.run(_galley_rates(galley, seconds, watchers, events))
            r = results[store]
            log(f"  galley/{store}: {r['applies_per_s_1_in_flight']:.0f} applies/s (1 in flight), "
                f"{r['applies_per_s_16_in_flight']:.0f}/s (16 in flight); watch fan-out to {watchers}: "
                f"p50 {r['watch_fanout']['p50_ms']:.1f} ms p99 {r['watch_fanout']['p99_ms']:.1f} ms")
        except Exception as exc:  # noqa: BLE001 - one store failing must not lose the other
            results[store] = {"unavailable": str(exc).splitlines()[0][:300]}
            log(f"  galley/{store}: failed: {results[store]['unavailable']}")
        finally:
            sup.close()
    return results
