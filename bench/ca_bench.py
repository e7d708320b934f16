"""CA benchmark: workload certificates signed per second on one core, beside `openssl speed`.

For each CA key type (ECDSA P-256, RSA 2048) it measures
  * sign path  — what CreateCertificate does after authentication: parse the CSR, check
                 its rules and signature, build and sign the leaf, PEM-encode the chain;
  * gRPC       — full CreateCertificate calls over loopback (token verification included),
                 client and server in this one process, 32 calls in flight;
  * openssl    — `openssl speed` raw signatures/s for the same key type (the physical bound).
Each figure is the best of 3 runs (the machine may be shared; the best run is the least
disturbed). Prints a table and writes bench/results/ca.json.
Usage: python bench/ca_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isthmus.citadel.app import CitadelApp, CitadelConfig
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.keys import KeyType
from isthmus.citadel.pki.policy import IssuancePolicy
from isthmus.citadel.pki.store import SelfSignedSource
from isthmus.citadel.spiffe import SpiffeId
from isthmus.shared.logging import configure

IDENTITY = SpiffeId("cluster.local", "bench", "load")
REPEATS = 3
OPENSSL_ALG = {KeyType.EC_P256: "ecdsap256", KeyType.RSA_2048: "rsa2048"}


def pin_to_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def sign_path_rate(key_type: KeyType, seconds: float) -> tuple[float, int]:
    ca = CertificateAuthority(SelfSignedSource(Path(tempfile.mkdtemp()), "cluster.local", key_type),
                              IssuancePolicy())
    csrs = [make_csr(key_type.generate(), IDENTITY) for _ in range(64)]
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for pem in csrs[:16]:
            ca.sign_workload(check_csr(pem, IDENTITY), IDENTITY, 86400)
        n += 16
    return n / elapsed, n


async def grpc_rate(key_type: KeyType, seconds: float, in_flight: int = 32) -> tuple[float, int]:
    app = CitadelApp(CitadelConfig(Path(tempfile.mkdtemp()), listen="127.0.0.1:0", key_type=key_type))
    await app.start()
    token = app.token_key.mint(IDENTITY, 3600, time.time())
    client = CitadelClient(f"127.0.0.1:{app.port}", token=lambda: token)
    csrs = [make_csr(key_type.generate(), IDENTITY) for _ in range(in_flight)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(csr: str) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await client.create_certificate(csr, 86400)
            done += 1

    try:
        await client.create_certificate(csrs[0], 86400)  # warm up the channel
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in csrs))
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
        await app.stop(grace=None)
    return done / elapsed, done


def openssl_speed(key_type: KeyType, seconds: int, cpu: int) -> float | None:
    exe = shutil.which("openssl")
    if exe is None:
        return None
    out = subprocess.run([exe, "speed", "-seconds", str(seconds), OPENSSL_ALG[key_type]], capture_output=True,
                         text=True, timeout=120, preexec_fn=lambda: os.sched_setaffinity(0, {cpu})).stdout
    if key_type is KeyType.RSA_2048:
        m = re.search(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", out, re.M)
    else:
        m = re.search(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)", out, re.M)
    return float(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per run instead of 3 s")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ca.json")
    args = parser.parse_args()
    configure("bench", level="warning", json=False)
    seconds = 1.0 if args.quick else 3.0
    cpu = pin_to_one_core()
    rows = []
    for key_type in KeyType:
        sign, sign_n = max(sign_path_rate(key_type, seconds) for _ in range(REPEATS))
        rpc, rpc_n = max(asyncio.run(grpc_rate(key_type, seconds)) for _ in range(REPEATS))
        refs = [openssl_speed(key_type, max(1, int(seconds)), cpu) for _ in range(REPEATS)]
        ref = max((r for r in refs if r), default=None)
        rows.append({"key_type": key_type.value, "sign_path_per_s": round(sign, 1), "sign_path_n": sign_n,
                     "grpc_per_s": round(rpc, 1), "grpc_n": rpc_n,
                     "openssl_sign_per_s": ref, "sign_path_vs_openssl": round(sign / ref, 3) if ref else None})
    print(f"\nCA signing on one core (cpu {cpu}), best of {REPEATS} runs of {seconds:.0f} s\n")
    print(f"{'CA key':<10} {'sign path/s':>12} {'gRPC calls/s':>13} {'openssl sign/s':>15} {'path/openssl':>13}")
    for r in rows:
        ref = f"{r['openssl_sign_per_s']:.0f}" if r["openssl_sign_per_s"] else "n/a"
        ratio = f"{r['sign_path_vs_openssl'] * 100:.1f}%" if r["sign_path_vs_openssl"] else "n/a"
        print(f"{r['key_type']:<10} {r['sign_path_per_s']:>12.0f} {r['grpc_per_s']:>13.0f} {ref:>15} {ratio:>13}")
    result = {"benchmark": "ca", "quick": args.quick, "seconds_per_run": seconds, "runs": REPEATS, "cpu": cpu,
              "python": sys.version.split()[0], "machine": platform.machine(),
              "openssl": subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
              if shutil.which("openssl") else None,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
