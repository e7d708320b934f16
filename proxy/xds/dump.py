"""`/config_dump` as Envoy writes it, built from Envoy's own admin protos (pure).

`config_dump(node, state, secrets)` returns the JSON of `envoy.admin.v3.ConfigDump`:
Bootstrap (node), Clusters, Endpoints, Listeners, Routes and Secrets dumps of the
snapshot the data plane serves, each resource with the version it came in and when;
a resource of the last NACKed update carries `error_state`; warming (pending, not yet
published) clusters and listeners are listed as Envoy lists them. Private keys are
redacted as Envoy redacts them. Field names are the proto names (snake_case), as Envoy's.
"""
from __future__ import annotations

from typing import Mapping

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2 as shared
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

from isthmus.proxy.config.snapshot import Snapshot
from isthmus.proxy.xds.state import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, AdsState, TypeState

REDACTED = "[redacted]"


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _pack(msg: Message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def _meta(t: TypeState, name: str) -> dict:
    out: dict = {"version_info": t.held.get(name, t.version)}
    if name in t.updated_at:
        out["last_updated"] = _ts(t.updated_at[name])
    return out


def _failed(t: TypeState, name: str) -> bool:
    """Whether the last NACK of `t` was about `name` (by resource, or named in a bind error)."""
    nack = t.last_nack
    return nack is not None and (nack.resource == name if nack.resource else f"'{name}'" in nack.error
                                 or f'"{name}"' in nack.error or f"listener {name}" in nack.error)


def _error(t: TypeState) -> shared.UpdateFailureState:
    nack = t.last_nack
    assert nack is not None
    return shared.UpdateFailureState(last_update_attempt=_ts(nack.at), details=nack.error, version_info=nack.version)


def redact(secret: secret_pb2.Secret) -> secret_pb2.Secret:
    out = secret_pb2.Secret()
    out.CopyFrom(secret)
    if out.HasField("tls_certificate"):
        key = out.tls_certificate.private_key
        if key.WhichOneof("specifier") in ("inline_bytes", "inline_string"):
            key.Clear()
            key.inline_string = REDACTED
    return out


def _clusters(state: AdsState, active: Snapshot) -> shared.ClustersConfigDump:
    t = state.types[CLUSTER]
    dump = shared.ClustersConfigDump(version_info=t.version)
    have = active.resources.get(CLUSTER, {})
    for name, msg in sorted(have.items()):
        entry = dump.dynamic_active_clusters.add(cluster=_pack(msg), **_meta(t, name))
        if _failed(t, name):
            entry.error_state.CopyFrom(_error(t))
    for name, msg in sorted(state.pending.resources.get(CLUSTER, {}).items()):
        if have.get(name) != msg:
            dump.dynamic_warming_clusters.add(cluster=_pack(msg), **_meta(t, name))
    return dump


def _listeners(state: AdsState, active: Snapshot) -> shared.ListenersConfigDump:
    t = state.types[LISTENER]
    dump = shared.ListenersConfigDump(version_info=t.version)
    have = active.resources.get(LISTENER, {})
    pending = state.pending.resources.get(LISTENER, {})
    nack = t.last_nack
    names = sorted(set(have) | set(pending) | ({nack.resource} if nack and nack.resource else set()))
    for name in names:
        entry = dump.dynamic_listeners.add(name=name)
        if name in have:
            entry.active_state.CopyFrom(shared.ListenersConfigDump.DynamicListenerState(listener=_pack(have[name]), **_meta(t, name)))
        if name in pending and pending[name] != have.get(name):
            entry.warming_state.CopyFrom(shared.ListenersConfigDump.DynamicListenerState(listener=_pack(pending[name]), **_meta(t, name)))
        if _failed(t, name):
            entry.error_state.CopyFrom(_error(t))
    return dump


def _routes(state: AdsState, active: Snapshot) -> shared.RoutesConfigDump:
    t = state.types[ROUTE]
    dump = shared.RoutesConfigDump()
    for name, msg in sorted(active.resources.get(ROUTE, {}).items()):
        entry = dump.dynamic_route_configs.add(route_config=_pack(msg), **_meta(t, name))
        if _failed(t, name):
            entry.error_state.CopyFrom(_error(t))
    return dump


def _endpoints(state: AdsState, active: Snapshot) -> shared.EndpointsConfigDump:
    t = state.types[ENDPOINT]
    dump = shared.EndpointsConfigDump()
    for name, msg in sorted(active.resources.get(ENDPOINT, {}).items()):
        dump.dynamic_endpoint_configs.add(endpoint_config=_pack(msg), **_meta(t, name))
    return dump


def _secrets(state: AdsState, active: Snapshot, local: Mapping[str, secret_pb2.Secret],
             local_version: str) -> config_dump_pb2.SecretsConfigDump:
    t = state.types[SECRET]
    dump = config_dump_pb2.SecretsConfigDump()
    referenced = set(active.references().secrets)
    for name, msg in sorted(local.items()):
        if name in referenced:
            dump.dynamic_active_secrets.add(name=name, version_info=local_version, secret=_pack(redact(msg)))
    for name, msg in sorted(active.resources.get(SECRET, {}).items()):
        if name not in local:
            meta = _meta(t, name)
            dump.dynamic_active_secrets.add(name=name, secret=_pack(redact(msg)), **meta)
    return dump


def config_dump(node: base_pb2.Node, state: AdsState, local_secrets: Mapping[str, secret_pb2.Secret] | None = None,
                *, local_version: str = "", include_eds: bool = True, started_at: float = 0.0) -> dict:
    """`local_secrets` are the agent's own (default, ROOTCA), listed where the snapshot uses them."""
    active = state.active or Snapshot()
    boot = config_dump_pb2.BootstrapConfigDump(bootstrap=bootstrap_pb2.Bootstrap(node=node))
    if started_at:
        boot.last_updated.CopyFrom(_ts(started_at))
    parts: list[Message] = [boot, _clusters(state, active)]
    if include_eds:
        parts.append(_endpoints(state, active))
    parts += [_listeners(state, active), _routes(state, active), _secrets(state, active, local_secrets or {}, local_version)]
    dump = config_dump_pb2.ConfigDump(configs=[_pack(p) for p in parts])
    return json_format.MessageToDict(dump, preserving_proto_field_name=True)
