"""Validate one Istio document end to end, as Kubernetes + Istio's webhook would.

Order (as the API server then the webhook): envelope (apiVersion, kind, metadata),
CRD schema and its CEL rules; then, only if those passed, the semantic checks of the
kind's validator. Every problem is reported in one pass. Never raises on bad input.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from isthmus.shared.config import kinds as kinds_table
from isthmus.shared.config.resource import Meta, Resource
from isthmus.shared.config.validation import schema as schema_check
from isthmus.shared.config.validation.report import Finding, Findings

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
BODY_ENVELOPE = {"apiVersion", "kind", "metadata"}
# ObjectMeta fields a user may send; server-managed ones are accepted and ignored.
META_FIELDS = {
    "name", "namespace", "labels", "annotations", "resourceVersion", "uid", "generation",
    "creationTimestamp", "generateName", "finalizers", "ownerReferences", "managedFields",
    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
}


@dataclass(frozen=True)
class Outcome:
    """Result of validating one document: the resource when it is valid."""

    subject: str  # "VirtualService default/reviews"
    resource: Resource | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def _label_errors(labels: Any, path: str, f: Findings) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        f.error(path, f"must be a map of string to string (got {type(labels).__name__})")
        return {}
    out = {}
    for k, v in labels.items():
        key = str(k)
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
            f.error(f"{path}[{key}]", "label key prefix must be a DNS subdomain")
        if not name or len(name) > 63 or not LABEL_NAME.match(name):
            f.error(f"{path}[{key}]", "label key must be 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending with alphanumeric")
        if not isinstance(v, str):
            f.error(f"{path}[{key}]", f"label value must be a string (got {type(v).__name__}); quote it")
            continue
        if len(v) > 63 or not LABEL_VALUE.match(v):
            f.error(f"{path}[{key}]", f"invalid label value {v!r}: 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending with alphanumeric")
        out[key] = v
    return out


def _meta(doc: dict[str, Any], default_namespace: str, namespaced: bool, f: Findings) -> Meta | None:
    md = doc.get("metadata")
    if not isinstance(md, dict):
        f.error("metadata", "required: an object with at least `name`")
        return None
    for k in md:
        if k not in META_FIELDS:
            f.error(f"metadata.{k}", "unknown field")
    name = md.get("name")
    if not isinstance(name, str) or not name:
        f.error("metadata.name", "required: a DNS-1123 name such as `reviews`")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        f.error("metadata.name", f"invalid name {name!r}: lowercase alphanumeric, '-' or '.', starting and ending with alphanumeric")
    ns = md.get("namespace", default_namespace) if namespaced else ""
    if namespaced:
        if not isinstance(ns, str) or not ns:
            f.error("metadata.namespace", "must be a non-empty string")
        elif len(ns) > 63 or not DNS1123_LABEL.match(ns):
            f.error("metadata.namespace", f"invalid namespace {ns!r}: a DNS-1123 label (lowercase alphanumeric or '-')")
    labels = _label_errors(md.get("labels"), "metadata.labels", f)
    annotations = md.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        f.error("metadata.annotations", "must be a map of string to string")
        annotations = {}
    if f.errors:
        return None
    return Meta(name=name, namespace=ns, labels=labels, annotations={str(k): v for k, v in annotations.items()})


def _subject(doc: Any, default_namespace: str) -> str:
    if not isinstance(doc, dict):
        return ""
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "<no kind>"
    md = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = md.get("name") if isinstance(md.get("name"), str) else "<no name>"
    ns = md.get("namespace") if isinstance(md.get("namespace"), str) else default_namespace
    return f"{kind} {ns}/{name}"


def validate_document(doc: Any, *, default_namespace: str = "default", source: str = "") -> Outcome:
    f = Findings()
    subject = _subject(doc, default_namespace) or source or "document"
    if not isinstance(doc, dict):
        f.error("", f"a resource must be a mapping with apiVersion, kind, metadata and spec (got {type(doc).__name__})")
        return _finish(subject, None, f)
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not kind:
        f.error("kind", "required")
    if not isinstance(api_version, str) or not api_version:
        f.error("apiVersion", "required")
    if f.errors:
        return _finish(subject, None, f)
    row = kinds_table.by_kind(kind)
    if row is None:
        known = ", ".join(k.kind for k in kinds_table.KINDS)
        f.error("kind", f"unknown kind {kind!r}; Isthmus serves {known}")
        return _finish(subject, None, f)
    if api_version not in row.api_versions:
        f.error("apiVersion", f"{api_version!r} is not served for {kind}; use one of {', '.join(row.api_versions)}")
    # A kind without `spec` (core Secret) stores its top-level body fields as the spec.
    top_level = TOP_LEVEL if not row.body_fields else BODY_ENVELOPE | set(row.body_fields)
    for k in doc:
        if k not in top_level:
            f.error(str(k), "unknown field")
    meta = _meta(doc, default_namespace, row.namespaced, f)
    spec = row.body(doc)
    path = "" if row.body_fields else "spec"
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        f.error("spec", f"must be an object (got {type(spec).__name__})")
    else:
        schema_check.check_spec(row.schema(), spec, f, path)
    if f.errors or meta is None:
        return _finish(subject, None, f)
    # Stored as the API server would: unknown fields and nulls pruned, plain JSON.
    try:
        canonical = json.loads(json.dumps(schema_check.prune_spec(row.schema(), spec)))
        if row.normalize is not None:
            canonical = row.normalize(canonical)
    except (TypeError, ValueError) as exc:
        f.error(path or "data", f"is not representable as JSON: {exc}")
        return _finish(subject, None, f)
    typed = row.spec_class.from_dict(canonical)
    info = kinds_table.ObjectInfo(
        kind=kind, api_version=api_version, name=meta.name, namespace=meta.namespace,
        labels=dict(meta.labels), annotations=dict(meta.annotations),
    )
    row.validate(typed, info, f)
    resource = Resource(kind=kind, api_version=api_version, meta=meta, spec=canonical) if f.ok else None
    return _finish(subject, resource, f)


def _finish(subject: str, resource: Resource | None, f: Findings) -> Outcome:
    return Outcome(
        subject=subject,
        resource=resource,
        errors=tuple(e.render(subject) for e in f.errors),
        warnings=tuple(w.render(subject) for w in f.warnings),
    )


__all__ = ["Finding", "Findings", "Outcome", "validate_document"]
