"""The core/v1 Secret kind: a body instead of a spec, PEM validation as Istio reads credentials,
the API server's stringData folding, and never a private key in what we print."""
from __future__ import annotations

import base64
import json
import subprocess

import pytest
import yaml

from isthmus.cli.create_cmd import tls_secret_document
from isthmus.cli.output import manifest
from isthmus.galley.convert import document_to_proto, from_proto, to_document
from isthmus.shared.config.kinds import by_kind, resolve_kind
from isthmus.shared.config.secret import REDACTED, SecretSpec, credential, redacted_body
from isthmus.shared.config.validation import validate_document
from tests.helpers.procs import ISTHMUS
from tests.helpers.tlsca import TestCA

CA = TestCA()
LEAF = CA.issue("shop.example.com")
OTHER = CA.issue("other.example.com")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret(**body) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cred", "namespace": "istio-system"}, **body}


def errors(doc: dict) -> list[str]:
    return list(validate_document(doc).errors)


def test_the_kind_row():
    row = by_kind("Secret")
    assert row.api_versions == ("v1",) and row.preferred_api_version == "v1" and row.group == ""
    assert resolve_kind("secret") is row and resolve_kind("secrets") is row


def test_a_tls_secret_is_stored_with_its_body_as_spec():
    outcome = validate_document(secret(type="kubernetes.io/tls", data={"tls.crt": b64(LEAF.cert), "tls.key": b64(LEAF.key)}))
    assert outcome.ok, outcome.errors
    assert outcome.resource.spec == {"type": "kubernetes.io/tls", "data": {"tls.crt": b64(LEAF.cert), "tls.key": b64(LEAF.key)}}


def test_string_data_folds_into_data_and_type_defaults_to_opaque():
    outcome = validate_document(secret(stringData={"cert": LEAF.cert.decode(), "key": LEAF.key.decode(), "cacert": CA.pem.decode()}))
    assert outcome.ok, outcome.errors
    spec = outcome.resource.spec
    assert spec["type"] == "Opaque" and "stringData" not in spec and base64.b64decode(spec["data"]["cert"]) == LEAF.cert
    cred = credential(SecretSpec.from_dict(spec))
    assert (cred.cert_chain, cred.private_key, cred.ca) == (LEAF.cert, LEAF.key, CA.pem)


@pytest.mark.parametrize("body,message", [
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": b64(LEAF.cert), "tls.key": b64(OTHER.key)}},
     "data[tls.key]: does not match the certificate in tls.crt"),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": b64(LEAF.cert)}}, "needs tls.crt and tls.key"),
    ({"type": "Opaque", "data": {"cert": b64(LEAF.cert)}}, "data[key]: required with cert"),
    ({"data": {"tls.crt": b64(b"junk"), "tls.key": b64(LEAF.key)}}, "data[tls.crt]: is not a PEM certificate"),
    ({"data": {"tls.crt": b64(LEAF.cert), "tls.key": b64(b"junk")}}, "data[tls.key]: is not an unencrypted PEM private key"),
    ({"data": {"ca.crt": "not base64!"}}, "data[ca.crt]: must be base64-encoded"),
    ({"data": {"something": b64(b"x")}}, "no TLS credential"),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {}}, "unsupported Secret type"),
    ({"spec": {"data": {}}}, "spec: unknown field"),
])
def test_invalid_secrets_name_the_field(body, message):
    assert any(message in e for e in errors(secret(**body))), errors(secret(**body))


def test_a_ca_only_secret_is_valid():
    assert not errors(secret(data={"ca.crt": b64(CA.pem)}))


def test_galley_wire_round_trip_keeps_the_top_level_body():
    doc = secret(type="kubernetes.io/tls", data={"tls.crt": b64(LEAF.cert), "tls.key": b64(LEAF.key)})
    wire = document_to_proto(doc, "default")
    assert json.loads(wire.spec_json) == {"type": "kubernetes.io/tls", "data": doc["data"]}
    back = to_document(wire)
    assert "spec" not in back and back["data"] == doc["data"] and validate_document(back).ok
    assert from_proto(wire).spec["data"] == doc["data"]


def test_printed_secrets_have_no_private_key():
    outcome = validate_document(secret(stringData={"tls.crt": LEAF.cert.decode(), "tls.key": LEAF.key.decode(),
                                                   "weird-name": LEAF.key.decode()}))
    shown = manifest(outcome.resource)
    assert "spec" not in shown and shown["data"]["tls.key"] == REDACTED and shown["data"]["weird-name"] == REDACTED
    assert base64.b64decode(shown["data"]["tls.crt"]) == LEAF.cert
    assert "PRIVATE KEY" not in yaml.safe_dump(shown) and b64(LEAF.key)[:20] not in json.dumps(shown)
    assert redacted_body({"stringData": {"key": "x"}})["stringData"]["key"] == REDACTED


def test_create_secret_tls_document_and_offline_refusal(tmp_path):
    doc = tls_secret_document("cred", "istio-system", LEAF.cert, LEAF.key, CA.pem)
    assert validate_document(doc).ok and doc["type"] == "kubernetes.io/tls" and set(doc["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    cert, _ = LEAF.write(tmp_path, "leaf")
    _, wrong_key = OTHER.write(tmp_path, "other")
    res = subprocess.run([*ISTHMUS, "create", "secret", "tls", "cred", "--cert", str(cert), "--key", str(wrong_key),
                          "--galley", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "does not match the certificate" in res.stderr  # refused before any network call
    assert "PRIVATE KEY" not in res.stdout + res.stderr
