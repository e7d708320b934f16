"""The one config object that crosses every boundary: a validated Istio resource.

`Resource` is frozen; `spec` holds the canonical JSON value (as the user wrote it,
after validation), and `KindInfo.spec_class.from_dict(spec)` gives the typed view.
Stores assign `resource_version` (their revision of the last write) and
`creation_timestamp`; callers never invent them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping


def _frozen(m: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    annotations: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    resource_version: str = ""
    creation_timestamp: str = ""
    generation: int = 0
    uid: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))

    def __hash__(self) -> int:
        return hash((self.name, self.namespace, self.resource_version))


@dataclass(frozen=True)
class Resource:
    kind: str
    api_version: str
    meta: Meta
    spec: Mapping[str, Any]

    def __hash__(self) -> int:
        return hash((self.kind, self.meta))

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.kind, self.meta.namespace, self.meta.name)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def revision(self) -> int:
        return int(self.meta.resource_version or 0)

    def spec_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"))

    def same_content(self, other: "Resource") -> bool:
        """True when an update would change nothing a user wrote."""
        return (
            self.api_version == other.api_version
            and self.spec_json() == other.spec_json()
            and dict(self.meta.labels) == dict(other.meta.labels)
            and dict(self.meta.annotations) == dict(other.meta.annotations)
        )

    def with_meta(self, **changes: Any) -> "Resource":
        return replace(self, meta=replace(self.meta, **changes))

    def to_manifest(self) -> dict[str, Any]:
        """The Kubernetes-style document (`kubectl get -o yaml` shape)."""
        meta: dict[str, Any] = {"name": self.meta.name}
        if self.meta.namespace:
            meta["namespace"] = self.meta.namespace
        if self.meta.labels:
            meta["labels"] = dict(self.meta.labels)
        if self.meta.annotations:
            meta["annotations"] = dict(self.meta.annotations)
        if self.meta.resource_version:
            meta["resourceVersion"] = self.meta.resource_version
        if self.meta.creation_timestamp:
            meta["creationTimestamp"] = self.meta.creation_timestamp
        if self.meta.generation:
            meta["generation"] = self.meta.generation
        if self.meta.uid:
            meta["uid"] = self.meta.uid
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta, "spec": json.loads(self.spec_json())}

    def to_record(self) -> str:
        """Serialised form the stores keep (JSON, stable key order)."""
        return json.dumps(self.to_manifest(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_record(cls, text: str | bytes) -> "Resource":
        doc = json.loads(text)
        md = doc.get("metadata", {})
        return cls(
            kind=doc["kind"],
            api_version=doc["apiVersion"],
            meta=Meta(
                name=md["name"],
                namespace=md.get("namespace", ""),
                labels=md.get("labels") or {},
                annotations=md.get("annotations") or {},
                resource_version=str(md.get("resourceVersion", "")),
                creation_timestamp=md.get("creationTimestamp", ""),
                generation=int(md.get("generation", 0)),
                uid=md.get("uid", ""),
            ),
            spec=doc.get("spec") or {},
        )
