"""Resource <-> galley_pb2.Resource: the one translation at galley's wire boundary."""
from __future__ import annotations

import json

from isthmus.shared.config.kinds import by_kind
from isthmus.shared.config.resource import Meta, Resource
from isthmus.shared.protos import galley_pb2


def to_proto(r: Resource) -> galley_pb2.Resource:
    return galley_pb2.Resource(
        api_version=r.api_version,
        kind=r.kind,
        namespace=r.meta.namespace,
        name=r.meta.name,
        resource_version=r.meta.resource_version,
        labels=dict(r.meta.labels),
        annotations=dict(r.meta.annotations),
        creation_timestamp=r.meta.creation_timestamp,
        generation=r.meta.generation,
        uid=r.meta.uid,
        spec_json=r.spec_json(),
    )


def from_proto(p: galley_pb2.Resource) -> Resource:
    """Trusted direction (galley → client): the spec was validated before it was stored."""
    return Resource(
        kind=p.kind,
        api_version=p.api_version,
        meta=Meta(
            name=p.name,
            namespace=p.namespace,
            labels=dict(p.labels),
            annotations=dict(p.annotations),
            resource_version=p.resource_version,
            creation_timestamp=p.creation_timestamp,
            generation=p.generation,
            uid=p.uid,
        ),
        spec=json.loads(p.spec_json) if p.spec_json else {},
    )


def to_document(p: galley_pb2.Resource) -> dict:
    """Untrusted direction (client → galley): the manifest galley validates from scratch."""
    metadata: dict = {"name": p.name}
    if p.namespace:
        metadata["namespace"] = p.namespace
    if p.labels:
        metadata["labels"] = dict(p.labels)
    if p.annotations:
        metadata["annotations"] = dict(p.annotations)
    if p.resource_version:
        metadata["resourceVersion"] = p.resource_version
    doc: dict = {"apiVersion": p.api_version, "kind": p.kind, "metadata": metadata}
    if p.spec_json:
        spec = json.loads(p.spec_json)
        row = by_kind(p.kind)
        if row is not None and row.body_fields and isinstance(spec, dict):
            doc.update(row.manifest_body(spec))  # a Secret's body sits at the top level
        else:
            doc["spec"] = spec
    return doc


def document_to_proto(doc: dict, namespace: str) -> galley_pb2.Resource:
    """Client side: a parsed YAML document as it goes on the wire (no validation here)."""
    md = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    row = by_kind(str(doc.get("kind", "")))
    body = row.body(doc) if row is not None else doc.get("spec")
    return galley_pb2.Resource(
        api_version=str(doc.get("apiVersion", "")),
        kind=str(doc.get("kind", "")),
        namespace=str(md.get("namespace") or namespace),
        name=str(md.get("name", "")),
        resource_version=str(md.get("resourceVersion", "") or ""),
        labels={str(k): str(v) for k, v in (md.get("labels") or {}).items()} if isinstance(md.get("labels"), dict) else {},
        annotations={str(k): str(v) for k, v in (md.get("annotations") or {}).items()} if isinstance(md.get("annotations"), dict) else {},
        spec_json=json.dumps(body if body is not None else {}, default=str),
    )
