"""Host names as Istio reads them: short names, FQDNs and wildcards.

`resolve_short_name("reviews", "default")` → `reviews.default.svc.cluster.local`;
names with a dot are taken as written. Pure helpers shared by analysis and pilot.
"""
from __future__ import annotations

DEFAULT_DOMAIN = "cluster.local"


def resolve_short_name(host: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """Istio's rule: a name without a dot (and not `*`) is a service in the config's namespace."""
    if not host or host == "*" or "." in host or host.startswith("*"):
        return host
    return f"{host}.{namespace}.svc.{domain}"


def host_matches(pattern: str, host: str) -> bool:
    """Does `pattern` (possibly `*.example.com` or `*`) cover `host`?"""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if host.startswith("*.") and pattern.startswith("*."):
        return pattern.endswith(host[1:])
    return False


def hosts_overlap(a: str, b: str) -> bool:
    return host_matches(a, b) or host_matches(b, a)


def split_namespaced(entry: str, own_namespace: str) -> tuple[str, str]:
    """`ns/name`, `./name`, `name` → (namespace, name); `*/x` keeps `*`."""
    if "/" not in entry:
        return own_namespace, entry
    ns, _, name = entry.partition("/")
    return (own_namespace if ns == "." else ns), name
