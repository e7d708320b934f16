"""Issued chains checked by the openssl CLI, the physical reference for X.509."""
import time

import pytest

from isthmus.citadel.pki.csr import make_csr
from isthmus.citadel.pki.keys import KeyType
from isthmus.citadel.pki.store import SelfSignedSource

from .helpers import ALICE, needs_openssl, openssl, write_chain_files, write_plugin_cacerts

pytestmark = needs_openssl


async def issue(app, make_client, key_type=KeyType.EC_P256):
    client = make_client(app, ALICE)
    chain = await client.create_certificate(make_csr(key_type.generate(), ALICE), 3600)
    return chain, (await client.trust_bundle()).pem()


def verify(directory, chain, roots_pem):
    leaf, rest, root = write_chain_files(directory, chain, roots_pem)
    result = openssl("verify", "-CAfile", str(root), "-untrusted", str(rest), str(leaf))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{leaf}: OK"
    return leaf


def assert_san(leaf):
    text = openssl("x509", "-in", str(leaf), "-noout", "-text").stdout
    san_block = text.split("X509v3 Subject Alternative Name: critical")[1].split("\n")[1].strip()
    assert san_block == f"URI:{ALICE.uri}"
    assert "CA:FALSE" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text


@pytest.mark.parametrize("key_type", list(KeyType))
async def test_openssl_verifies_self_signed_ca_chain(make_citadel, make_client, tmp_path, key_type):
    app = await make_citadel(key_type=key_type)
    chain, roots = await issue(app, make_client, key_type)
    assert len(chain) == 2
    assert_san(verify(tmp_path / "out", chain, roots))


async def test_openssl_verifies_plugin_intermediate_chain(make_citadel, make_client, tmp_path):
    write_plugin_cacerts(tmp_path / "cacerts")
    app = await make_citadel(cacerts=tmp_path / "cacerts")
    chain, roots = await issue(app, make_client)
    assert len(chain) == 3  # leaf, intermediate, root
    assert roots == (tmp_path / "cacerts" / "root-cert.pem").read_text()
    leaf = verify(tmp_path / "out", chain, roots)
    assert_san(leaf)
    # without the intermediate, the leaf does not verify against the root
    bare = openssl("verify", "-CAfile", str(tmp_path / "out" / "root.pem"), str(leaf))
    assert bare.returncode != 0


async def test_openssl_verifies_both_sides_of_a_root_rotation(make_citadel, make_client, tmp_path):
    app = await make_citadel()
    old_chain, _ = await issue(app, make_client)
    SelfSignedSource(app.config.data_dir, app.trust_domain).rotate(time.time())
    assert app.refresh()
    new_chain, bundle = await issue(app, make_client)
    assert bundle.count("BEGIN CERTIFICATE") == 2
    verify(tmp_path / "old", old_chain, bundle)
    verify(tmp_path / "new", new_chain, bundle)
