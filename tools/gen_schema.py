"""Extract the spec schema of every kind we serve from Istio's CRDs.

    python tools/gen_schema.py [CRD_FILE] > shared/config/schema/crds.json

Keeps field names, types, enums, bounds, formats and CEL rules; drops prose. The
output is checked in (the product must not need the corpus at run time) and a test
fails when it no longer matches the corpus.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

SERVED = {
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "Sidecar"),
    ("networking.istio.io", "WorkloadEntry"),
    ("networking.istio.io", "WorkloadGroup"),
    ("security.istio.io", "PeerAuthentication"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "RequestAuthentication"),
    ("telemetry.istio.io", "Telemetry"),
}
DROP = {"description", "x-kubernetes-list-type", "x-kubernetes-map-type"}


def strip(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in DROP:
                continue
            if k == "x-kubernetes-validations":
                out[k] = [{"rule": r["rule"], "message": r.get("message", "")} for r in v]
                continue
            out[k] = strip(v)
        return out
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def extract(crd_text: str) -> dict:
    kinds: dict[str, dict] = {}
    for doc in yaml.safe_load_all(crd_text):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        if (group, kind) not in SERVED:
            continue
        schemas = {}
        for v in spec["versions"]:
            if v.get("served", True):
                schemas[v["name"]] = strip(v["schema"]["openAPIV3Schema"]["properties"]["spec"])
        distinct = {json.dumps(s, sort_keys=True) for s in schemas.values()}
        if len(distinct) != 1:
            raise SystemExit(f"{kind}: versions carry different schemas; the model assumes one")
        kinds[kind] = {
            "group": group,
            "plural": spec["names"]["plural"],
            "shortNames": spec["names"].get("shortNames", []),
            "scope": spec["scope"],
            "versions": sorted(schemas),
            "spec": next(iter(schemas.values())),
        }
    missing = {k for _, k in SERVED} - set(kinds)
    if missing:
        raise SystemExit(f"CRD file lacks kinds: {sorted(missing)}")
    return dict(sorted(kinds.items()))


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpus/istio-crds/crd-all.gen.yaml")
    json.dump(extract(src.read_text()), sys.stdout, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
