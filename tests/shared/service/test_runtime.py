"""shared/service/runtime.py: listening sockets, resolver host names, C heap release."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from isthmus.shared.service.runtime import host_bytes, split_address, tcp_listener


def test_tcp_listener_binds_exactly_and_accepts():
    sock = tcp_listener("127.0.0.1", 0, 16)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0 and not sock.getblocking()
        with socket.create_connection((host, port), timeout=5):
            pass
        with pytest.raises(OSError):  # the port is taken: a second listener without SO_REUSEPORT fails
            tcp_listener("127.0.0.1", port, 16).close()
    finally:
        sock.close()


def test_tcp_listener_reuse_port_shares_the_port():
    a = tcp_listener("127.0.0.1", 0, 16, reuse_port=True)
    b = tcp_listener("127.0.0.1", a.getsockname()[1], 16, reuse_port=True)
    a.close(), b.close()


def test_host_bytes():
    assert host_bytes("reviews.default.svc.cluster.local") == b"reviews.default.svc.cluster.local"
    assert host_bytes("bücher.example") == b"xn--bcher-kva.example"
    assert split_address("pilot:15012", 1) == ("pilot", 15012)


def test_release_free_memory_returns_freed_heap_pages():
    """Free pages between live allocations stay resident until trimmed."""
    probe = textwrap.dedent("""
        from isthmus.shared.service.runtime import release_free_memory

        def rss():
            return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])

        keep, drop = [], []
        for i in range(700):
            drop.append(bytearray(64 * 1024))  # C heap, below malloc's mmap threshold (zeroed: resident)
            keep.append(bytearray(600))        # a survivor after each: the freed chunks are not at the heap's top
        del drop
        before = rss()
        assert release_free_memory()
        print(before - rss())
    """)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 20_000, f"only {res.stdout.strip()} KiB returned"  # ~44 MiB were freed
