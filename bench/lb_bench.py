"""Perf sanity for upstream load balancers: choose() calls per second, 10 and 100 hosts.

Run: .venv/bin/python bench/lb_bench.py [--seconds 0.5]
Hash-based balancers get a precomputed request hash (as the router passes one); the
cost of computing that hash from a header is reported on its own line. Also reports
the time to build each balancer's tables for the host set (paid on EDS/health changes).
"""
from __future__ import annotations

import argparse
import random
import time

from isthmus.proxy.upstream.endpoints import Endpoint, HostSet
from isthmus.proxy.upstream.hash_lb import Maglev, RingHash
from isthmus.proxy.upstream.hashing import HeaderHash, hash_str, request_hash
from isthmus.proxy.upstream.lb import ChooseContext, LeastRequest, Random, RoundRobin

BALANCERS = [
    ("RoundRobin", RoundRobin, False),
    ("RoundRobin (weighted)", RoundRobin, True),
    ("LeastRequest", LeastRequest, False),
    ("LeastRequest (weighted)", LeastRequest, True),
    ("Random", Random, False),
    ("RingHash", RingHash, False),
    ("Maglev", Maglev, False),
]


def host_set(n: int, weighted: bool) -> HostSet:
    r = random.Random(n)
    return HostSet(Endpoint(f"10.{i // 250}.{i % 250}.1", 8080, weight=r.randint(1, 10) if weighted else 1)
                   for i in range(n))


def rate(fn, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            fn()
        calls += 1000
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    contexts = [ChooseContext(hash_key=hash_str(f"user-{i}")) for i in range(1024)]
    print(f"{'balancer':26} {'hosts':>5} {'choose/s':>12} {'ns/choose':>10} {'build ms':>9}")
    for name, cls, weighted in BALANCERS:
        for n in (10, 100):
            hs = host_set(n, weighted)
            lb = cls(hs, rng=random.Random(1))
            t0 = time.perf_counter()
            lb.choose()  # builds the tables
            build_ms = (time.perf_counter() - t0) * 1000
            if cls is LeastRequest:
                for i, h in enumerate(hs.hosts):
                    for _ in range(i % 4):
                        h.request_started()
            if lb.hash_based:
                it = iter(range(1 << 62))
                choose, ctxs = lb.choose, contexts
                per_sec = rate(lambda: choose(ctxs[next(it) & 1023]), args.seconds)
            else:
                per_sec = rate(lb.choose, args.seconds)
            print(f"{name:26} {n:5d} {per_sec:12,.0f} {1e9 / per_sec:10.0f} {build_ms:9.1f}")
    policies = [HeaderHash("x-user")]
    headers = [{"x-user": f"user-{i}"} for i in range(100_000)]
    it = iter(range(1 << 62))
    per_sec = rate(lambda: request_hash(policies, headers=headers[next(it) % 100_000]), args.seconds)
    print(f"{'request_hash (header)':26} {'':5} {per_sec:12,.0f} {1e9 / per_sec:10.0f}   (100k distinct values)")


if __name__ == "__main__":
    main()
