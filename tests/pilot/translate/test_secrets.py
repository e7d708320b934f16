"""SDS over ADS: credentialName Secrets for gateways in their own namespace, as Istio."""
from __future__ import annotations

from cryptography import x509

from isthmus.pilot.translate.secrets import build_secrets
from tests.helpers.tlsca import TestCA, tls_secret_yaml
from tests.pilot.fixtures import push_from_yaml, sidecar
from tests.pilot.translate.gateway_fixtures import INGRESS, gateway_proxy

CA, OTHER = TestCA("a"), TestCA("b")
LEAF = CA.issue("shop.example.com")
PUSH = push_from_yaml("---\n".join([
    tls_secret_yaml("shop", "istio-system", LEAF, ca=CA.pem),
    tls_secret_yaml("plain", "istio-system", CA.issue("plain.example.com")),
    tls_secret_yaml("plain-cacert", "istio-system", None, ca=OTHER.pem),
    tls_secret_yaml("elsewhere", "default", CA.issue("x.example.com")),
]))


def by_name(proxy, *names):
    return {s.name: s for s in build_secrets(proxy, PUSH, names)}


def test_certificate_and_key_inline():
    got = by_name(INGRESS, "kubernetes://shop")["kubernetes://shop"]
    assert got.tls_certificate.certificate_chain.inline_bytes == LEAF.cert
    assert got.tls_certificate.private_key.inline_bytes == LEAF.key


def test_ca_from_the_cacert_secret_else_from_ca_crt():
    got = by_name(INGRESS, "kubernetes://shop-cacert", "kubernetes://plain-cacert")
    assert got["kubernetes://shop-cacert"].validation_context.trusted_ca.inline_bytes == CA.pem
    ca = x509.load_pem_x509_certificate(got["kubernetes://plain-cacert"].validation_context.trusted_ca.inline_bytes)
    assert ca.subject == OTHER.cert.subject  # the dedicated NAME-cacert Secret wins


def test_only_gateways_and_only_their_namespace():
    assert by_name(sidecar(), "kubernetes://shop") == {}
    assert by_name(INGRESS, "kubernetes://elsewhere") == {}
    assert set(by_name(gateway_proxy(namespace="default"), "kubernetes://elsewhere", "kubernetes://shop")) == {
        "kubernetes://elsewhere"}


def test_unknown_and_agent_names_are_left_out():
    assert by_name(INGRESS, "kubernetes://missing", "kubernetes://missing-cacert", "default", "ROOTCA",
                   "kubernetes://plain").keys() == {"kubernetes://plain"}
