"""Compiled building blocks shared by every resource: durations (float seconds; Envoy's
"unset → default, 0 → disabled" convention), fractions, addresses and CIDRs, data
sources, metadata, config sources (ADS or a gRPC bootstrap cluster), and `unpack` of
typed_config Any messages by type URL against a caller's allow-list.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from google.protobuf import json_format
from google.protobuf.message import Message

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, grpc_service_pb2
from envoy.type.v3 import percent_pb2

from isthmus.proxy.config.errors import Fields, Where, short_type

EMPTY: Mapping[str, Any] = MappingProxyType({})

SOCKET_ADDRESS = Fields(address_pb2.SocketAddress, {"address", "port_value", "protocol"})
PIPE = Fields(address_pb2.Pipe, {"path", "mode"})
ADDRESS = Fields(address_pb2.Address, {"socket_address", "pipe"})
CIDR = Fields(address_pb2.CidrRange, {"address_prefix", "prefix_len"})
DATA_SOURCE = Fields(base_pb2.DataSource, {"filename", "inline_bytes", "inline_string"})
FRACTIONAL = Fields(percent_pb2.FractionalPercent, {"numerator", "denominator"})
RUNTIME_FRACTION = Fields(base_pb2.RuntimeFractionalPercent, {"default_value"}, {"runtime_key": "no runtime layer: the default applies, as in Envoy without an override"})
CONFIG_SOURCE = Fields(config_source_pb2.ConfigSource, {"ads", "api_config_source", "self", "initial_fetch_timeout", "resource_api_version"})
API_CONFIG_SOURCE = Fields(config_source_pb2.ApiConfigSource, {"api_type", "transport_api_version", "grpc_services"},
                           {"set_node_on_first_message_only": "protocol detail of the xDS client"})
GRPC_SERVICE = Fields(grpc_service_pb2.GrpcService, {"envoy_grpc"}, {"timeout": "per-call deadline of the xDS client"})
ENVOY_GRPC = Fields(grpc_service_pb2.GrpcService.EnvoyGrpc, {"cluster_name"}, {"authority": "xDS client detail"})
METADATA = Fields(base_pb2.Metadata, {"filter_metadata"}, {"typed_filter_metadata": "not consulted by any isthmus filter"})

DENOMINATORS = {percent_pb2.FractionalPercent.HUNDRED: 100, percent_pb2.FractionalPercent.TEN_THOUSAND: 10_000,
                percent_pb2.FractionalPercent.MILLION: 1_000_000}


# ---------------------------------------------------------------- scalars

def seconds(d) -> float:
    """A google.protobuf.Duration as float seconds."""
    return d.seconds + d.nanos / 1e9


def timeout(msg: Message, name: str, default: float | None) -> float | None:
    """Envoy's timeout convention: unset → `default`; an explicit 0 → None (disabled)."""
    if not msg.HasField(name):
        return default
    value = seconds(getattr(msg, name))
    return value if value > 0 else None


def opt_seconds(msg: Message, name: str, default: float | None = None) -> float | None:
    return seconds(getattr(msg, name)) if msg.HasField(name) else default


def wrapped(msg: Message, name: str, default: Any) -> Any:
    """The value of a google.protobuf wrapper field, or `default` when unset."""
    return getattr(msg, name).value if msg.HasField(name) else default


def enum(table: Mapping[int, Any], msg: Message, name: str, where: Where) -> Any:
    """The compiled form of an enum field; an unknown (newer) enum value is Unsupported."""
    value = getattr(msg, name)
    if value not in table:
        raise where.at(name).unsupported(f"{msg.DESCRIPTOR.name}.{name} value {value} is not supported")
    return table[value]


@dataclass(frozen=True, slots=True)
class Fraction:
    """numerator/denominator; `hits(random_value)` is Envoy's `random % denominator < numerator`."""

    numerator: int
    denominator: int = 100

    def hits(self, random_value: int) -> bool:
        return random_value % self.denominator < self.numerator

    @property
    def percent(self) -> float:
        return 100.0 * self.numerator / self.denominator


ALWAYS = Fraction(100, 100)


def fractional(msg: percent_pb2.FractionalPercent, where: Where) -> Fraction:
    FRACTIONAL.check(msg, where)
    denominator = DENOMINATORS.get(msg.denominator)
    if denominator is None:
        raise where.at("denominator").invalid(f"unknown denominator {msg.denominator}")
    return Fraction(min(msg.numerator, denominator), denominator)


def runtime_fraction(msg: base_pb2.RuntimeFractionalPercent, where: Where) -> Fraction:
    RUNTIME_FRACTION.check(msg, where)
    return fractional(msg.default_value, where.at("default_value"))


# ---------------------------------------------------------------- addresses

@dataclass(frozen=True, slots=True)
class Address:
    """A TCP address (`host` is an IP, or a DNS name for DNS clusters) or a unix socket (`pipe`)."""

    host: str = ""
    port: int = 0
    pipe: str = ""
    pipe_mode: int = 0

    def __str__(self) -> str:
        if self.pipe:
            return f"unix://{self.pipe}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def address(msg: address_pb2.Address, where: Where) -> Address:
    ADDRESS.check(msg, where)
    which = msg.WhichOneof("address")
    if which == "pipe":
        PIPE.check(msg.pipe, where.at("pipe"))
        return Address(pipe=msg.pipe.path, pipe_mode=msg.pipe.mode)
    if which != "socket_address":
        raise where.invalid("an address needs socket_address or pipe")
    sa = msg.socket_address
    w = where.at("socket_address")
    SOCKET_ADDRESS.check(sa, w)
    if sa.protocol != address_pb2.SocketAddress.TCP:
        raise w.at("protocol").unsupported("only TCP is supported")
    return Address(host=sa.address, port=sa.port_value)


def cidr(msg: address_pb2.CidrRange, where: Where):
    CIDR.check(msg, where)
    length = wrapped(msg, "prefix_len", None)
    try:
        net = ipaddress.ip_network(msg.address_prefix, strict=False)
        if length is not None:
            net = ipaddress.ip_network(f"{msg.address_prefix}/{length}", strict=False)
    except ValueError as e:
        raise where.invalid(f"bad CIDR range {msg.address_prefix}/{length}: {e}") from None
    return net


# ---------------------------------------------------------------- data sources, metadata

@dataclass(frozen=True, slots=True)
class DataSourceConfig:
    """Inline bytes, or a file the runtime reads (compilation does no I/O)."""

    inline: bytes | None = None
    filename: str = ""


def data_source(msg: base_pb2.DataSource, where: Where) -> DataSourceConfig:
    DATA_SOURCE.check(msg, where)
    which = msg.WhichOneof("specifier")
    if which == "filename":
        return DataSourceConfig(filename=msg.filename)
    if which == "inline_bytes":
        return DataSourceConfig(inline=bytes(msg.inline_bytes))
    if which == "inline_string":
        return DataSourceConfig(inline=msg.inline_string.encode())
    return DataSourceConfig(inline=b"")


def struct_dict(s) -> dict:
    return json_format.MessageToDict(s)


def metadata(msg: base_pb2.Metadata, where: Where) -> Mapping[str, Mapping[str, Any]]:
    METADATA.check(msg, where)
    if not msg.filter_metadata:
        return EMPTY
    return MappingProxyType({ns: MappingProxyType(struct_dict(s)) for ns, s in msg.filter_metadata.items()})


# ---------------------------------------------------------------- typed config

def unpack(any_msg, where: Where, allowed: Mapping[str, type[Message]]) -> Message:
    """Unpack an Any whose type URL is one of `allowed` (full message name → class)."""
    name = short_type(any_msg.type_url)
    cls = allowed.get(name)
    if cls is None:
        expected = ", ".join(sorted(allowed)) or "nothing"
        raise where.unsupported(f"unsupported type URL {any_msg.type_url!r} (supported here: {expected})")
    out = cls()
    if not any_msg.Unpack(out):
        raise where.invalid(f"cannot unpack {any_msg.type_url}")
    return out


def by_name(*classes: type[Message]) -> dict[str, type[Message]]:
    return {c.DESCRIPTOR.full_name: c for c in classes}


# ---------------------------------------------------------------- config sources

@dataclass(frozen=True, slots=True)
class ConfigSourceRef:
    """Where a named resource (RDS/EDS/SDS) comes from: the ADS stream, or a gRPC stream to a
    bootstrap cluster (`sds-grpc` for the agent's SDS)."""

    kind: str = "ads"  # ads | grpc | delta_grpc
    cluster: str = ""
    initial_fetch_timeout: float | None = 15.0  # None: wait forever


def config_source(msg: config_source_pb2.ConfigSource, where: Where) -> ConfigSourceRef:
    CONFIG_SOURCE.check(msg, where)
    if msg.resource_api_version != config_source_pb2.V3:
        raise where.at("resource_api_version").unsupported("only xDS v3 resources are supported")
    fetch = timeout(msg, "initial_fetch_timeout", 15.0)
    which = msg.WhichOneof("config_source_specifier")
    if which in ("ads", "self"):
        return ConfigSourceRef("ads", "", fetch)
    if which != "api_config_source":
        raise where.unsupported("config source must be ads, self or api_config_source")
    api = msg.api_config_source
    w = where.at("api_config_source")
    API_CONFIG_SOURCE.check(api, w)
    kinds = {config_source_pb2.ApiConfigSource.GRPC: "grpc", config_source_pb2.ApiConfigSource.DELTA_GRPC: "delta_grpc"}
    kind = kinds.get(api.api_type)
    if kind is None:
        raise w.at("api_type").unsupported("only GRPC and DELTA_GRPC config sources are supported")
    if api.transport_api_version != config_source_pb2.V3:
        raise w.at("transport_api_version").unsupported("only xDS v3 transport is supported")
    if len(api.grpc_services) != 1:
        raise w.at("grpc_services").unsupported("exactly one gRPC service is supported")
    svc = api.grpc_services[0]
    GRPC_SERVICE.check(svc, w.at("grpc_services").idx(0))
    if not svc.HasField("envoy_grpc"):
        raise w.at("grpc_services").idx(0).unsupported("only envoy_grpc (a bootstrap cluster) is supported")
    ENVOY_GRPC.check(svc.envoy_grpc, w.at("grpc_services").idx(0).at("envoy_grpc"))
    return ConfigSourceRef(kind, svc.envoy_grpc.cluster_name, fetch)
