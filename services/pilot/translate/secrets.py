"""SDS over ADS: `kubernetes://NAME[-cacert]` → Envoy `Secret`s from stored Secret resources.

As Istio's credentials controller: only gateways (router proxies) get them, and only from
Secrets in their own namespace. `kubernetes://NAME` is the certificate chain and key
(`tls.crt`/`tls.key`, or `cert`/`key`); `kubernetes://NAME-cacert` is the CA to validate
peers with, from a Secret `NAME-cacert` if one exists, else from `NAME`'s `ca.crt`/`cacert`.
A name that resolves to nothing is left out of the response (Envoy keeps waiting for it).
Other SDS names (`default`, `ROOTCA`, `file-*`) belong to the agent, not to pilot.
"""
from __future__ import annotations

from typing import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import PushContext
from isthmus.shared.config.secret import credential

KUBERNETES_PREFIX = "kubernetes://"
CA_SUFFIX = "-cacert"


def _inline(data: bytes) -> base_pb2.DataSource:
    return base_pb2.DataSource(inline_bytes=data)


def build_secrets(proxy: Proxy, push: PushContext, names: Iterable[str]) -> list[secret_pb2.Secret]:
    if not proxy.is_gateway:
        return []
    stored = {c.name: c.spec for c in push.configs.of("Secret") if c.namespace == proxy.namespace}
    out = []
    for name in names:
        if not name.startswith(KUBERNETES_PREFIX):
            continue
        ref = name[len(KUBERNETES_PREFIX):]
        if ref.endswith(CA_SUFFIX):
            own = stored.get(ref)
            base = stored.get(ref[: -len(CA_SUFFIX)])
            ca = (credential(own).ca if own is not None else b"") or (credential(base).ca if base is not None else b"")
            if ca:
                out.append(secret_pb2.Secret(
                    name=name, validation_context=common_pb2.CertificateValidationContext(trusted_ca=_inline(ca))
                ))
            continue
        spec = stored.get(ref)
        cred = credential(spec) if spec is not None else None
        if cred is not None and cred.cert_chain and cred.private_key:
            out.append(secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=_inline(cred.cert_chain), private_key=_inline(cred.private_key),
            )))
    return out
