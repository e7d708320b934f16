"""Key + CSR generation in a forked child: same key and CSR as in-process, failures as
RuntimeError with the child's reason, and no `cryptography` in the caller, even after."""
import asyncio
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isthmus.citadel.pki import keygen
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.keys import KeyType, load_key

from .helpers import ALICE


def public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("key_type, key_class", [(KeyType.EC_P256, ec.EllipticCurvePrivateKey),
                                                  (KeyType.RSA_2048, rsa.RSAPrivateKey)])
async def test_child_key_matches_its_csr(key_type, key_class):
    key_pem, csr_pem = await keygen.generate_in_child(key_type, ALICE)
    key = load_key(key_pem, "child key")
    assert isinstance(key, key_class)
    if key_type is KeyType.RSA_2048:
        assert key.key_size == 2048
    else:
        assert key.curve.name == "secp256r1"
    csr = check_csr(csr_pem, ALICE)  # the rules citadel applies: signature, key strength, one URI SAN
    assert public_der(csr.public_key()) == public_der(key.public_key())
    assert csr.subject == x509.Name([])
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(ALICE.uri)]
    assert same_request(csr_pem, make_csr(key, ALICE))


def same_request(a: str, b: str) -> bool:
    """Same CSR content (ECDSA signatures differ from run to run, so compare what is signed)."""
    return x509.load_pem_x509_csr(a.encode()).tbs_certrequest_bytes == \
        x509.load_pem_x509_csr(b.encode()).tbs_certrequest_bytes


async def test_string_key_type_and_dns_names():
    key_pem, csr_pem = await keygen.generate_in_child("ec-p256", ALICE, ("a.example", "b.example"))
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert public_der(csr.public_key()) == public_der(load_key(key_pem, "child key").public_key())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [ALICE.uri]
    assert san.get_values_for_type(x509.DNSName) == ["a.example", "b.example"]
    assert same_request(csr_pem, make_csr(load_key(key_pem, "child key"), ALICE, ("a.example", "b.example")))


async def test_bad_key_type_is_a_runtime_error_with_the_reason():
    with pytest.raises(RuntimeError, match=r"keygen: key_type 'dsa-1024': must be one of ec-p256, rsa-2048"):
        await keygen.generate_in_child("dsa-1024", ALICE)
    unchecked = SimpleNamespace(trust_domain="td", namespace="Bad_NS", service_account="sa")  # not a SpiffeId
    with pytest.raises(RuntimeError, match=r"keygen: namespace 'Bad_NS': must be a DNS-1123 label"):
        await keygen.generate_in_child("ec-p256", unchecked, ())


def fake_child(monkeypatch, work) -> None:
    """Make the forked child run `work(request)` instead of generating (the fork copies the patch)."""
    monkeypatch.setattr(keygen, "_generate", work)


def _exit3(request):
    os._exit(3)


def _sigkill(request):
    os.kill(os.getpid(), signal.SIGKILL)


def _not_pem(request):
    return {"key_pem": "x", "csr_pem": "y"}


def _crash(request):
    raise RuntimeError("out of entropy")


@pytest.mark.parametrize("work, words", [
    (_not_pem, "sent no valid answer.*not PEM"),
    (_crash, "keygen: RuntimeError: out of entropy"),
    (_exit3, "child exited with status 3"),
    (_sigkill, "child was killed by SIGKILL"),
])
async def test_misbehaving_child(monkeypatch, work, words):
    fake_child(monkeypatch, work)
    with pytest.raises(RuntimeError, match=words):
        await keygen.generate_in_child(KeyType.EC_P256, ALICE)


def _sleeper(pid_file):
    def work(request):
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    return work


async def test_timeout_kills_the_child(monkeypatch, tmp_path):
    pid_file = tmp_path / "pid"
    fake_child(monkeypatch, _sleeper(pid_file))
    with pytest.raises(RuntimeError, match=r"did not answer within 1\.5s; killed it"):
        await keygen.generate_in_child(KeyType.EC_P256, ALICE, timeout=1.5)
    assert_gone(int(pid_file.read_text()))


async def test_cancellation_kills_the_child(monkeypatch, tmp_path):
    pid_file = tmp_path / "pid"
    fake_child(monkeypatch, _sleeper(pid_file))
    task = asyncio.ensure_future(keygen.generate_in_child(KeyType.EC_P256, ALICE))
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_gone(int(pid_file.read_text()))


def assert_gone(pid: int) -> None:
    """Killed and reaped: no such process (a zombie would still answer kill(pid, 0))."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_caller_never_imports_cryptography():
    code = ("import asyncio, sys\n"
            "from isthmus.citadel.pki.keygen import generate_in_child\n"
            "from isthmus.citadel.spiffe import SpiffeId\n"
            "key, csr = asyncio.run(generate_in_child('ec-p256', SpiffeId('cluster.local', 'ns', 'sa')))\n"
            "assert key.startswith(b'-----BEGIN PRIVATE KEY-----') and 'CERTIFICATE REQUEST' in csr\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"
