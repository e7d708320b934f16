"""The one table that binds each kind to its group, versions, spec class and validator.

Nothing registers itself at import time: adding a kind means adding a row here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Callable

from isthmus.shared.config import secret, types
from isthmus.shared.config.spec import Spec
from isthmus.shared.config.validation import networking, security, telemetry
from isthmus.shared.config.validation.report import Findings

# A semantic (webhook-style) validator: (typed spec, metadata view, findings) → None.
# It runs only after the schema admitted the document, as Istio's webhook only sees
# objects the API server's CRD schema accepted.
Validator = Callable[[Any, "ObjectInfo", Findings], None]


@dataclass(frozen=True)
class ObjectInfo:
    """What a semantic validator may know of the object besides its spec."""

    kind: str
    api_version: str
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class KindInfo:
    kind: str
    group: str
    versions: tuple[str, ...]
    plural: str
    short_names: tuple[str, ...]
    spec_class: type[Spec]
    validate: Validator
    namespaced: bool = True
    # Kinds without a `spec` (core Secret): the top-level fields that form the stored body,
    # its structural schema, and how the API server normalises it before storing.
    body_fields: tuple[str, ...] = ()
    body_schema: dict[str, Any] | None = None
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" if self.group else v for v in self.versions)

    @property
    def preferred_api_version(self) -> str:
        version = "v1" if "v1" in self.versions else self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    def schema(self) -> dict[str, Any]:
        if self.body_schema is not None:
            return self.body_schema
        return _schemas()[self.kind]["spec"]

    def body(self, doc: dict[str, Any]) -> Any:
        """The part of a document that is stored as the spec: `spec`, or the body fields."""
        if not self.body_fields:
            return doc.get("spec")
        return {k: doc[k] for k in self.body_fields if k in doc}

    def manifest_body(self, spec: Any) -> dict[str, Any]:
        """The stored spec back in the document's shape (`{"spec": ...}` or the body fields)."""
        return dict(spec) if self.body_fields else {"spec": spec}


@cache
def _schemas() -> dict[str, Any]:
    text = resources.files("isthmus.shared.config.schema").joinpath("crds.json").read_text()
    return json.loads(text)


def _row(kind: str, validate: Validator, extra_short: tuple[str, ...] = ()) -> KindInfo:
    info = _schemas()[kind]
    return KindInfo(
        kind=kind,
        group=info["group"],
        versions=tuple(info["versions"]),
        plural=info["plural"],
        short_names=tuple(info["shortNames"]) + extra_short,
        spec_class=types.SPEC_CLASSES[kind],
        validate=validate,
        namespaced=info["scope"] == "Namespaced",
    )


KINDS: tuple[KindInfo, ...] = (
    _row("VirtualService", networking.validate_virtual_service),
    _row("DestinationRule", networking.validate_destination_rule),
    _row("Gateway", networking.validate_gateway),
    _row("ServiceEntry", networking.validate_service_entry),
    _row("Sidecar", networking.validate_sidecar, ("sidecar",)),
    _row("WorkloadEntry", networking.validate_workload_entry),
    _row("WorkloadGroup", networking.validate_workload_group),
    _row("PeerAuthentication", security.validate_peer_authentication),
    _row("AuthorizationPolicy", security.validate_authorization_policy),
    _row("RequestAuthentication", security.validate_request_authentication),
    _row("Telemetry", telemetry.validate_telemetry),
    KindInfo(
        kind="Secret", group="", versions=("v1",), plural="secrets", short_names=(),
        spec_class=secret.SecretSpec, validate=secret.validate_secret, namespaced=True,
        body_fields=secret.BODY_FIELDS, body_schema=secret.SCHEMA, normalize=secret.normalize_body,
    ),
)

_BY_KIND = {k.kind: k for k in KINDS}
_BY_ALIAS = {
    alias.lower(): k
    for k in KINDS
    for alias in (k.kind, k.plural, k.kind.lower(), *k.short_names,
                  *((f"{k.plural}.{k.group}", f"{k.kind}.{k.group}") if k.group else ()))
}


def by_kind(kind: str) -> KindInfo | None:
    return _BY_KIND.get(kind)


def resolve_kind(name: str) -> KindInfo | None:
    """`vs`, `virtualservice`, `VirtualService`, `virtualservices.networking.istio.io` → the row."""
    return _BY_ALIAS.get(name.lower())


def for_document(api_version: str, kind: str) -> KindInfo | None:
    row = _BY_KIND.get(kind)
    if row is None or api_version not in row.api_versions:
        return None
    return row
