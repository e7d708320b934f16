"""Envoy's filter-chain selection, compiled once per listener into a lookup tree.

Criteria, in order: destination port → destination IP → server name (exact, then
`*.suffix` wildcards longest first) → transport protocol → application protocols (in
the client's order) → direct source IP → source type → source IP → source port. At
each level the most specific configured value that matches wins and the search never
backtracks: if that branch fails later there is no match (the listener's
default_filter_chain applies). Chains with identical match rules are rejected.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from envoy.config.listener.v3 import listener_components_pb2 as lc

from isthmus.proxy.config.common import cidr, enum, wrapped
from isthmus.proxy.config.errors import Fields, Where

MATCH = Fields(lc.FilterChainMatch, {
    "destination_port", "prefix_ranges", "direct_source_prefix_ranges", "source_type", "source_prefix_ranges",
    "source_ports", "server_names", "transport_protocol", "application_protocols",
})
SOURCE_TYPES = {lc.FilterChainMatch.ANY: "any", lc.FilterChainMatch.SAME_IP_OR_LOOPBACK: "same_ip_or_loopback",
                lc.FilterChainMatch.EXTERNAL: "external"}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FilterChainMatchConfig:
    destination_port: int = 0  # 0: any
    prefix_ranges: tuple[IPNetwork, ...] = ()
    server_names: tuple[str, ...] = ()  # lower-case; "*.example.com" wildcards allowed
    transport_protocol: str = ""  # "tls" | "raw_buffer" | "" (any)
    application_protocols: tuple[str, ...] = ()
    direct_source_prefix_ranges: tuple[IPNetwork, ...] = ()
    source_type: str = "any"
    source_prefix_ranges: tuple[IPNetwork, ...] = ()
    source_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Connection:
    """What the listener filters learnt about a connection (the lookup key)."""

    dest_port: int | None
    dest_ip: IPAddress | None
    server_name: str
    transport_protocol: str
    alpn: tuple[str, ...]
    source_ip: IPAddress | None
    source_port: int

    @property
    def is_local(self) -> bool:
        return self.source_ip is not None and (self.source_ip.is_loopback or self.source_ip == self.dest_ip)


def compile_chain_match(msg: lc.FilterChainMatch, where: Where) -> FilterChainMatchConfig:
    MATCH.check(msg, where)
    port = wrapped(msg, "destination_port", 0)
    if not 0 <= port <= 65535:
        raise where.at("destination_port").invalid(f"port {port} out of range")
    names = []
    for i, n in enumerate(msg.server_names):
        name = n.lower()
        if "*" in name and not (name.startswith("*.") and "*" not in name[1:]):
            raise where.at("server_names").idx(i).invalid(f"partial wildcards are not supported in server name {n!r}")
        names.append(name)
    ranges = lambda field: tuple(cidr(r, where.at(field).idx(i)) for i, r in enumerate(getattr(msg, field)))  # noqa: E731
    return FilterChainMatchConfig(
        destination_port=port,
        prefix_ranges=ranges("prefix_ranges"),
        server_names=tuple(names),
        transport_protocol=msg.transport_protocol,
        application_protocols=tuple(msg.application_protocols),
        direct_source_prefix_ranges=ranges("direct_source_prefix_ranges"),
        source_type=enum(SOURCE_TYPES, msg, "source_type", where),
        source_prefix_ranges=ranges("source_prefix_ranges"),
        source_ports=tuple(msg.source_ports),
    )


# ---------------------------------------------------------------- the tree

class _Node:
    __slots__ = ("table", "nets")

    def __init__(self, table: dict, ip_level: bool) -> None:
        self.table = table
        self.nets = tuple(sorted(((k, v) for k, v in table.items() if k != ""), key=lambda kv: -kv[0].prefixlen)) if ip_level else ()


def _port(node: _Node, c: Connection):
    hit = node.table.get(c.dest_port) if c.dest_port else None
    return hit if hit is not None else node.table.get(0)


def _ip_lookup(node: _Node, ip: IPAddress | None):
    if ip is not None:
        for net, child in node.nets:
            if net.version == ip.version and ip in net:
                return child
    return node.table.get("")


def _server_name(node: _Node, c: Connection):
    sni = c.server_name
    if sni:
        hit = node.table.get(sni)
        if hit is not None:
            return hit
        pos = sni.find(".", 1)
        while 0 < pos < len(sni) - 1:
            hit = node.table.get(sni[pos:])
            if hit is not None:
                return hit
            pos = sni.find(".", pos + 1)
    return node.table.get("")


def _transport(node: _Node, c: Connection):
    hit = node.table.get(c.transport_protocol) if c.transport_protocol else None
    return hit if hit is not None else node.table.get("")


def _alpn(node: _Node, c: Connection):
    for proto in c.alpn:
        hit = node.table.get(proto)
        if hit is not None:
            return hit
    return node.table.get("")


def _source_type(node: _Node, c: Connection):
    key = "same_ip_or_loopback" if c.is_local else "external"
    hit = node.table.get(key)
    return hit if hit is not None else node.table.get("any")


def _source_port(node: _Node, c: Connection):
    hit = node.table.get(c.source_port) if c.source_port else None
    return hit if hit is not None else node.table.get(0)


def _server_keys(m: FilterChainMatchConfig) -> list:
    return [n[1:] if n.startswith("*.") else n for n in m.server_names] or [""]


# (keys of a chain's match at this level, lookup, is an IP level)
_LEVELS: Sequence[tuple[Callable[[FilterChainMatchConfig], list], Callable[[_Node, Connection], Any], bool]] = (
    (lambda m: [m.destination_port], _port, False),
    (lambda m: list(m.prefix_ranges) or [""], lambda n, c: _ip_lookup(n, c.dest_ip), True),
    (_server_keys, _server_name, False),
    (lambda m: [m.transport_protocol], _transport, False),
    (lambda m: list(m.application_protocols) or [""], _alpn, False),
    (lambda m: list(m.direct_source_prefix_ranges) or [""], lambda n, c: _ip_lookup(n, c.source_ip), True),
    (lambda m: [m.source_type], _source_type, False),
    (lambda m: list(m.source_prefix_ranges) or [""], lambda n, c: _ip_lookup(n, c.source_ip), True),
    (lambda m: list(m.source_ports) or [0], _source_port, False),
)


def _build(entries: list[tuple[FilterChainMatchConfig, Any, int]], level: int, where: Where):
    if level == len(_LEVELS):
        if len({index for _, _, index in entries}) > 1:
            names = ", ".join(f"filter_chains[{i}]" for _, _, i in entries)
            raise where.invalid(f"multiple filter chains with the same matching rules are defined ({names})")
        return entries[0][1]
    keys_of, _, ip_level = _LEVELS[level]
    groups: dict = {}
    for entry in entries:
        for key in dict.fromkeys(keys_of(entry[0])):
            groups.setdefault(key, []).append(entry)
    return _Node({k: _build(v, level + 1, where) for k, v in groups.items()}, ip_level)


class ChainSelector:
    """`select(connection)` → the chain object Envoy would pick, or None."""

    __slots__ = ("_root", "uses_ips")

    def __init__(self, chains: Sequence[tuple[FilterChainMatchConfig, Any]], where: Where) -> None:
        entries = [(m, chain, i) for i, (m, chain) in enumerate(chains)]
        self._root = _build(entries, 0, where) if entries else None
        # Only parse connection addresses when some chain matches on them.
        self.uses_ips = any(m.prefix_ranges or m.direct_source_prefix_ranges or m.source_prefix_ranges
                            or m.source_type != "any" for m, _ in chains)

    def select(self, c: Connection):
        node = self._root
        for _, lookup, _ in _LEVELS:
            if node is None:
                return None
            node = lookup(node, c)
        return node


def parse_ip(value: "str | IPAddress | None") -> IPAddress | None:
    if not value:
        return None
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None
