"""Cross-resource analysis (`isthmus analyze`): findings Istio's analyzers would give.

Pure: a list of resources in, findings out. Codes and wording follow Istio's
(`Error [IST0101] (VirtualService default/reviews) Referenced host+subset in
destinationrule not found: "reviews+v4"`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from isthmus.shared.config.hosts import host_matches, resolve_short_name, split_namespaced
from isthmus.shared.config.resource import Resource

MESH_GATEWAY = "mesh"


@dataclass(frozen=True, order=True)
class AnalysisFinding:
    level: str  # Error | Warning | Info
    code: str
    subject: str  # "VirtualService default/reviews"
    message: str

    def render(self) -> str:
        return f"{self.level} [{self.code}] ({self.subject}) {self.message}"


def _subject(r: Resource) -> str:
    return f"{r.kind} {r.meta.namespace}/{r.meta.name}"


def _age_key(r: Resource) -> tuple:
    # Oldest first, as Istio orders conflicting config: creation time, then name.
    return (r.meta.creation_timestamp or "~", r.revision or 1 << 62, r.meta.namespace, r.meta.name)


def _destinations(vs: Resource) -> Iterable[tuple[str, dict]]:
    """(field path, destination) for every destination in a VirtualService."""
    spec = vs.spec
    for section in ("http", "tls", "tcp"):
        for i, route in enumerate(spec.get(section) or []):
            for j, dest in enumerate(route.get("route") or []):
                if isinstance(dest.get("destination"), dict):
                    yield f"spec.{section}[{i}].route[{j}].destination", dest["destination"]
            if section == "http":
                if isinstance(route.get("mirror"), dict):
                    yield f"spec.http[{i}].mirror", route["mirror"]
                for k, m in enumerate(route.get("mirrors") or []):
                    if isinstance(m.get("destination"), dict):
                        yield f"spec.http[{i}].mirrors[{k}].destination", m["destination"]


def _vs_gateways(vs: Resource) -> list[str]:
    refs = list(vs.spec.get("gateways") or [])
    for route in vs.spec.get("http") or []:
        for m in route.get("match") or []:
            refs.extend(m.get("gateways") or [])
    for section in ("tls", "tcp"):
        for route in vs.spec.get(section) or []:
            for m in route.get("match") or []:
                refs.extend(m.get("gateways") or [])
    return refs


def analyze(resources: Iterable[Resource], domain: str = "cluster.local") -> list[AnalysisFinding]:
    items = list(resources)
    by_kind: dict[str, list[Resource]] = defaultdict(list)
    for r in items:
        by_kind[r.kind].append(r)
    out: list[AnalysisFinding] = []

    gateways = {(g.meta.namespace, g.meta.name) for g in by_kind["Gateway"]}
    # host → subsets defined for it (DestinationRules, hosts resolved to FQDN)
    dr_subsets: list[tuple[str, set[str]]] = []
    for dr in by_kind["DestinationRule"]:
        host = resolve_short_name(str(dr.spec.get("host", "")), dr.meta.namespace, domain)
        dr_subsets.append((host, {s.get("name") for s in dr.spec.get("subsets") or []}))
    served: list[str] = []
    for se in by_kind["ServiceEntry"]:
        served.extend(resolve_short_name(h, se.meta.namespace, domain) for h in se.spec.get("hosts") or [])

    for vs in sorted(by_kind["VirtualService"], key=_age_key):
        for ref in dict.fromkeys(_vs_gateways(vs)):
            if ref == MESH_GATEWAY:
                continue
            ns, name = split_namespaced(ref, vs.meta.namespace)
            if (ns, name) not in gateways:
                out.append(AnalysisFinding("Error", "IST0101", _subject(vs), f'Referenced gateway not found: "{ref}"'))
        for _, dest in _destinations(vs):
            subset = dest.get("subset")
            if not subset:
                continue
            host = resolve_short_name(str(dest.get("host", "")), vs.meta.namespace, domain)
            known = [subs for dr_host, subs in dr_subsets if host_matches(dr_host, host)]
            if not any(subset in subs for subs in known):
                out.append(AnalysisFinding(
                    "Error", "IST0101", _subject(vs),
                    f'Referenced host+subset in destinationrule not found: "{dest.get("host")}+{subset}"',
                ))

    # Two VirtualServices for one host on the mesh gateway: only the oldest applies.
    owners: dict[str, list[Resource]] = defaultdict(list)
    for vs in by_kind["VirtualService"]:
        gws = vs.spec.get("gateways") or [MESH_GATEWAY]
        if MESH_GATEWAY not in gws or not vs.spec.get("hosts"):
            continue
        for h in vs.spec.get("hosts") or []:
            owners[resolve_short_name(h, vs.meta.namespace, domain)].append(vs)
    for host, vss in sorted(owners.items()):
        if len(vss) < 2:
            continue
        ordered = sorted(vss, key=_age_key)
        names = ",".join(f"{v.meta.namespace}/{v.meta.name}" for v in ordered)
        for vs in ordered:
            out.append(AnalysisFinding(
                "Error", "IST0109", _subject(vs),
                f"The VirtualServices {names} associated with mesh gateway define the same host {host} "
                f"which can lead to undefined behavior (only {ordered[0].meta.namespace}/{ordered[0].meta.name}, "
                "the oldest, takes effect). This can be fixed by merging the conflicting VirtualServices "
                "into a single resource.",
            ))

    # DestinationRule for a host that no service in the registry serves.
    for dr in by_kind["DestinationRule"]:
        host = resolve_short_name(str(dr.spec.get("host", "")), dr.meta.namespace, domain)
        if not any(host_matches(host, s) or host_matches(s, host) for s in served):
            out.append(AnalysisFinding(
                "Warning", "IST0101", _subject(dr),
                f'Referenced host not found: "{dr.spec.get("host")}" (no ServiceEntry or registered '
                "workload serves it, so this DestinationRule applies to nothing)",
            ))
    return sorted(set(out), key=lambda f: (f.subject, f.code, f.message))
