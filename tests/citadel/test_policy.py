"""Issuance policy: TTL clamping, and the DNS SANs only istiod may carry."""
import ipaddress
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from isthmus.citadel.certmanager import CertificateManager, RenewalPolicy
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.errors import Rejected
from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.keys import KeyType
from isthmus.citadel.pki.policy import CONTROL_PLANE_DNS_NAMES, DAY, HOUR, IssuancePolicy, allowed_dns_names, clamp_ttl
from isthmus.citadel.pki.store import SelfSignedSource
from isthmus.citadel.spiffe import SpiffeId

from .helpers import ALICE, build_csr

POLICY = IssuancePolicy()


@pytest.mark.parametrize("requested, expected", [
    (0, 24 * HOUR),          # unspecified → default
    (1, 60),                 # below the minimum → 1 min
    (59, 60),
    (3600, 3600),
    (90 * DAY, 90 * DAY),
    (365 * DAY, 90 * DAY),   # above the maximum → 90 days
])
def test_clamp(requested, expected):
    assert clamp_ttl(requested, POLICY) == expected


def test_negative_is_invalid():
    with pytest.raises(Rejected, match="must not be negative") as info:
        clamp_ttl(-5, POLICY)
    assert (info.value.reason, info.value.code) == ("ttl_negative", "INVALID_ARGUMENT")


def test_policy_must_be_ordered():
    with pytest.raises(ValueError, match="min_ttl"):
        IssuancePolicy(min_ttl=7200, default_ttl=3600)


# ---- the control plane's DNS SANs (istiod only) ----------------------------------------

ISTIOD = SpiffeId("cluster.local", "istio-system", "istiod")


def dns_sans(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_only_istiod_is_granted_dns_names():
    assert allowed_dns_names(ISTIOD) == {"istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "istiod"}
    assert allowed_dns_names(SpiffeId("other.domain", "istio-system", "istiod")) == set(CONTROL_PLANE_DNS_NAMES)
    for other in (ALICE, SpiffeId("cluster.local", "istio-system", "citadel"),
                  SpiffeId("cluster.local", "default", "istiod")):
        assert allowed_dns_names(other) == frozenset()


@pytest.mark.parametrize("dns", [list(CONTROL_PLANE_DNS_NAMES), ["istiod.istio-system.svc"], []])
def test_istiod_may_ask_for_its_hostnames(dns):
    check_csr(build_csr(uris=[ISTIOD.uri], dns=dns), ISTIOD)
    check_csr(make_csr(KeyType.EC_P256.generate(), ISTIOD, tuple(dns)), ISTIOD)


@pytest.mark.parametrize("caller, uris, dns", [
    (ISTIOD, [ISTIOD.uri], ["evil.example.com"]),                        # istiod, but not its hostname
    (ISTIOD, [ISTIOD.uri], ["istiod.istio-system.svc", "reviews"]),      # one bad name spoils the request
    (ISTIOD, [], ["istiod.istio-system.svc"]),                           # hostnames without the identity
    (ALICE, [ALICE.uri], ["istiod.istio-system.svc"]),                   # a workload claiming pilot's name
    (SpiffeId("cluster.local", "istio-system", "citadel"), ["spiffe://cluster.local/ns/istio-system/sa/citadel"], ["istiod"]),
    (SpiffeId("cluster.local", "default", "istiod"), ["spiffe://cluster.local/ns/default/sa/istiod"], ["istiod"]),
])
def test_other_dns_names_are_refused(caller, uris, dns):
    with pytest.raises(Rejected) as info:
        check_csr(build_csr(uris=uris, dns=dns), caller)
    assert (info.value.reason, info.value.code) == ("csr_extra_san", "PERMISSION_DENIED")
    if caller == ISTIOD:
        assert "istiod.istio-system.svc" in str(info.value) and "may hold only" in str(info.value)
    else:
        assert "must hold only the URI" in str(info.value)


def test_istiod_ip_san_is_refused():
    key = KeyType.EC_P256.generate()
    sans = [x509.UniformResourceIdentifier(ISTIOD.uri), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]
    pem = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=True).sign(key, hashes.SHA256())
           .public_bytes(serialization.Encoding.PEM).decode())
    with pytest.raises(Rejected, match="IP:10.0.0.1"):
        check_csr(pem, ISTIOD)


def test_signing_copies_only_granted_dns_names(tmp_path):
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local", KeyType.EC_P256), IssuancePolicy())
    csr = check_csr(make_csr(KeyType.EC_P256.generate(), ISTIOD, CONTROL_PLANE_DNS_NAMES), ISTIOD)
    assert dns_sans(ca.sign_workload(csr, ISTIOD, 3600)[0]) == list(CONTROL_PLANE_DNS_NAMES)
    # Defense in depth: an unchecked CSR asking for pilot's name gets no DNS SAN for another identity.
    sneaky = x509.load_pem_x509_csr(build_csr(uris=[ALICE.uri], dns=["istiod.istio-system.svc"]).encode())
    assert dns_sans(ca.sign_workload(sneaky, ALICE, 3600)[0]) == []


async def test_certificate_manager_requests_dns_names(citadel):
    token = citadel.token_key.mint(ISTIOD, 3600, time.time())
    client = CitadelClient(f"127.0.0.1:{citadel.port}", token=lambda: token)
    manager = CertificateManager(ISTIOD, client, policy=RenewalPolicy(bundle_refresh=1e9), dns_names=CONTROL_PLANE_DNS_NAMES)
    manager.start()
    try:
        cert = await manager.wait_ready(10)
        assert dns_sans(cert.chain[0]) == list(CONTROL_PLANE_DNS_NAMES)
    finally:
        await manager.stop()
        await client.close()
    # A workload asking the same is refused by citadel (and keeps retrying, unready).
    alice_token = citadel.token_key.mint(ALICE, 3600, time.time())
    alice_client = CitadelClient(f"127.0.0.1:{citadel.port}", token=lambda: alice_token)
    alice = CertificateManager(ALICE, alice_client, policy=RenewalPolicy(bundle_refresh=1e9, initial_backoff=5),
                               dns_names=("istiod.istio-system.svc",))
    alice.start()
    try:
        with pytest.raises(TimeoutError):
            await alice.wait_ready(0.5)
        assert not alice.ready
    finally:
        await alice.stop()
        await alice_client.close()
