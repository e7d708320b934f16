"""The HTTP connection manager's header work, as Envoy's ConnectionManagerUtility does it.

`prepare_request(stream, hcm)` runs once per request before routing: hop-by-hop
headers out, x-forwarded-for / x-envoy-internal per use_remote_address,
x-forwarded-proto, x-request-id (UUID4 when absent; regenerated for edge requests
unless preserve_external_request_id), x-forwarded-client-cert per
forward_client_cert_details, internal-only headers stripped for external requests,
the trace decision made as Envoy's UUID request-id extension makes it (`trace_decision`:
packed into the request id, so every hop keeps it) and a W3C trace context created,
sampled by that decision, only when the request carries none; peer metadata headers a client sent are dropped (inbound: read first). `apply_mutations(headers, levels, ctx)` applies route header
mutations in order (remove, then add with the append action). Header lists are the
codec's `list[(bytes, bytes)]`; names are lowercase.
"""
from __future__ import annotations

import ipaddress
import os
import random

from isthmus.proxy.config.matchers import HeaderMutations, HeaderValueConfig
from isthmus.proxy.protocol.headers import HOP_BY_HOP, header_tokens

XFF = b"x-forwarded-for"
XFP = b"x-forwarded-proto"
XRID = b"x-request-id"
XFCC = b"x-forwarded-client-cert"
INTERNAL = b"x-envoy-internal"
TRACEPARENT = b"traceparent"
B3 = (b"x-b3-traceid", b"b3")
# Headers Envoy removes from external (edge) requests: they steer Envoy itself.
ENVOY_CONTROL = frozenset({
    b"x-envoy-internal", b"x-envoy-retry-on", b"x-envoy-retry-grpc-on", b"x-envoy-max-retries",
    b"x-envoy-upstream-rq-timeout-ms", b"x-envoy-upstream-rq-per-try-timeout-ms", b"x-envoy-expected-rq-timeout-ms",
    b"x-envoy-upstream-alt-stat-name", b"x-envoy-hedge-on-per-try-timeout", b"x-envoy-downstream-service-cluster",
    b"x-envoy-downstream-service-node", b"x-envoy-force-trace", b"x-envoy-ip-tags", b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names", b"x-envoy-original-path", b"x-envoy-decorator-operation",
})

# Read by Envoy's router, never forwarded upstream.
ROUTER_CONTROL = frozenset({
    b"x-envoy-retry-on", b"x-envoy-retry-grpc-on", b"x-envoy-max-retries", b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-upstream-rq-per-try-timeout-ms", b"x-envoy-hedge-on-per-try-timeout", b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names", b"x-envoy-upstream-alt-stat-name", b"x-envoy-expected-rq-timeout-ms",
})
# Kept (and honoured) for internal requests only.
INTERNAL_CONTROL = frozenset({b"x-envoy-internal", b"x-envoy-force-trace", b"x-envoy-ip-tags"})


def strip_hop_by_hop(headers: list, keep_upgrade: bool = False) -> list:
    """Without hop-by-hop headers (and those `connection` nominates); `te: trailers`
    survives for gRPC. Returns `headers` itself when there is nothing to remove."""
    for k, _ in headers:
        if k in HOP_BY_HOP:
            break
    else:
        return headers
    nominated: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":
            nominated.update(header_tokens(v))
    nominated -= {b"close", b"keep-alive", b"upgrade", b"te"}
    out = []
    for k, v in headers:
        if k in HOP_BY_HOP:
            if k == b"te":
                if b"trailers" in header_tokens(v):
                    out.append((b"te", b"trailers"))
                continue
            if keep_upgrade and (k == b"upgrade" or (k == b"connection" and b"upgrade" in v.lower())):
                out.append((k, v))
            continue
        if nominated and k in nominated:
            continue
        out.append((k, v))
    return out


def get(headers: list, name: bytes) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def remove(headers: list, name: bytes) -> list:
    for k, _ in headers:
        if k == name:
            return [(a, b) for a, b in headers if a != name]
    return headers


def set_header(headers: list, name: bytes, value: bytes) -> list:
    headers = remove(headers, name)
    headers.append((name, value))
    return headers


_INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                                                          "fc00::/7", "::1/128"))


def is_internal(ip: str) -> bool:
    """RFC 1918 / loopback / unique-local: Envoy's default internal address check."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in _INTERNAL_NETS)


_HEX = b""  # random hex digits from one urandom read (one syscall per 2 KiB of randomness)
_HEX_AT = 0


def _random_hex(n: int) -> bytes:
    """n random lowercase hex digits (CSPRNG), sliced from the pooled read."""
    global _HEX, _HEX_AT
    start = _HEX_AT
    end = start + n
    if end > len(_HEX):
        _HEX = os.urandom(2048).hex().encode()
        start, end = 0, n
    _HEX_AT = end
    return _HEX[start:end]


# UUID4 variant: the high bits of byte 8 are 10, so its first hex digit is one of 8 9 a b.
_VARIANT = {digit: b"89ab"[int(chr(digit), 16) & 3:][:1] for digit in b"0123456789abcdef"}


def new_request_id() -> bytes:
    """A UUID4 (random, version 4, RFC 4122 variant)."""
    h = _random_hex(32)
    return b"%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], _VARIANT[h[16]], h[17:20], h[20:])


# The 15th character of a UUID request id carries Envoy's trace reason ('4': none).
_REASON_AT = 14
_TRACED = frozenset(b"9ab")  # sampled, forced by the service, forced by the client


def trace_decision(rid: bytes | None, client_trace: bool, force_trace: bool, sampling) -> tuple[bytes | None, bool]:
    """(the request id with the trace reason packed in, traced?) as Envoy decides it:
    a reason already in the id stands; else x-client-trace-id (client_sampling %),
    x-envoy-force-trace (kept for internal requests only), then random sampling
    stable per request id (its first 8 hex digits mod 10000 below the threshold);
    overall_sampling can veto. Ids that are not 36-character UUIDs are not traced."""
    if rid is None or len(rid) != 36:
        return rid, False
    reason = rid[_REASON_AT]
    head = rid[:8]
    try:
        if not head.isalnum():  # int() would take signs, spaces and underscores
            raise ValueError(head)
        result = int(head, 16) % 10000
    except ValueError:
        return rid, reason in _TRACED
    random_num, overall_num, client_pct = sampling
    new = reason
    if reason not in _TRACED:
        if client_trace and (client_pct >= 100.0 or random.random() * 100.0 < client_pct):
            new = 0x62  # b
        elif force_trace:
            new = 0x61  # a
        elif result < random_num:
            new = 0x39  # 9
    if result >= overall_num:
        new = 0x34  # 4
    if new != reason:
        rid = b"%s%c%s" % (rid[:_REASON_AT], new, rid[_REASON_AT + 1:])
    return rid, new in _TRACED


def new_traceparent(sampled: bool) -> bytes:
    h = _random_hex(48)
    return b"00-%s-%s-%s" % (h[:32], h[32:], b"01" if sampled else b"00")


# Request headers the HCM looks at, found in one pass: name → kind.
_HOP, _XFF, _XFP, _XRID, _XFCC, _TRACE, _CTYPE, _GRPC_TIMEOUT, _PEER_MD, _PEER_ID, _ENVOY, _CLIENT_TRACE, _FORCE_TRACE = \
    range(1, 14)
_KINDS = {k: _HOP for k in HOP_BY_HOP}
_KINDS.update({XFF: _XFF, XFP: _XFP, XRID: _XRID, XFCC: _XFCC, TRACEPARENT: _TRACE, B3[0]: _TRACE, B3[1]: _TRACE,
               b"content-type": _CTYPE, b"grpc-timeout": _GRPC_TIMEOUT, b"x-envoy-peer-metadata": _PEER_MD,
               b"x-envoy-peer-metadata-id": _PEER_ID, b"x-client-trace-id": _CLIENT_TRACE,
               b"x-envoy-force-trace": _FORCE_TRACE})
_KINDS.update({k: _ENVOY for k in ENVOY_CONTROL if k not in _KINDS})
_HOP_BIT, _TRACE_BIT, _ENVOY_BIT = 1 << _HOP, 1 << _TRACE, (1 << _ENVOY) | (1 << _FORCE_TRACE)
_CLIENT_TRACE_BIT, _FORCE_TRACE_BIT = 1 << _CLIENT_TRACE, 1 << _FORCE_TRACE
_PEER_BITS = (1 << _PEER_MD) | (1 << _PEER_ID)
GRPC = b"application/grpc"


def prepare_request(stream, hcm) -> list:
    """The request headers to route with (see the module docstring), in one pass over
    what the client sent; also notes gRPC-ness, grpc-timeout and peer metadata."""
    original = stream.head.headers
    kinds = _KINDS
    found = 0  # bit per kind seen
    xff = xfp = rid = xfcc = peer_md = None
    for k, v in original:
        t = kinds.get(k)
        if t is not None:
            found |= 1 << t
            if t == _CTYPE:
                if v.startswith(GRPC) and (len(v) == 16 or v[16:17] in (b"+", b";")):
                    stream.grpc = True
            elif t == _XRID:
                rid = v
            elif t == _XFP:
                xfp = v
            elif t == _XFF:
                xff = v
            elif t == _XFCC:
                xfcc = v
            elif t == _GRPC_TIMEOUT:
                stream.grpc_timeout = v
            elif t == _PEER_MD:
                peer_md = v
    headers = strip_hop_by_hop(original, stream.upgrade is not None) if found & _HOP_BIT else list(original)
    if found & _PEER_BITS:
        headers = [(k, v) for k, v in headers if k != b"x-envoy-peer-metadata" and k != b"x-envoy-peer-metadata-id"]
    info = stream.conn.info
    cfg = hcm.config
    edge = False
    if cfg.use_remote_address:
        remote_ip = info.remote[0] if info.remote else ""
        if not cfg.skip_xff_append and remote_ip:
            headers = set_header(headers, XFF, (xff + b"," + remote_ip.encode()) if xff else remote_ip.encode())
        if is_internal(remote_ip) and xff is None:
            headers = set_header(headers, INTERNAL, b"true")
        else:
            edge = True
            if found & _ENVOY_BIT:
                headers = [(k, v) for k, v in headers if k not in ENVOY_CONTROL]
                found &= ~_FORCE_TRACE_BIT  # an external client cannot force a trace
            if hcm.internal_only:
                headers = [(k, v) for k, v in headers if k.decode() not in hcm.internal_only]
        headers = set_header(headers, XFP, b"https" if info.tls else b"http")
        if not edge and found & _ENVOY_BIT:
            headers = [(k, v) for k, v in headers if k not in ROUTER_CONTROL]
    else:
        if found & _ENVOY_BIT:
            # Internal: the one address in x-forwarded-for is internal (none: an app's own request).
            internal = xff is not None and b"," not in xff and is_internal(xff.strip().decode("latin-1"))
            drop = ROUTER_CONTROL if internal else ROUTER_CONTROL | INTERNAL_CONTROL
            headers = [(k, v) for k, v in headers if k not in drop]
            if not internal:
                found &= ~_FORCE_TRACE_BIT
        if xfp is None:
            headers.append((XFP, b"https" if info.tls else b"http"))
    if cfg.via:
        headers.append((b"via", cfg.via.encode()))
    if (rid is None or (edge and not cfg.preserve_external_request_id)) and cfg.generate_request_id:
        new = new_request_id()
        if rid is None:
            headers.append((XRID, new))
        else:
            headers = set_header(headers, XRID, new)
        rid = new
    sampled = False
    if hcm.trace_sampling is not None:
        packed, sampled = trace_decision(rid, bool(found & _CLIENT_TRACE_BIT), bool(found & _FORCE_TRACE_BIT),
                                         hcm.trace_sampling)
        if packed is not rid:
            headers = set_header(headers, XRID, packed)
            rid = packed
    stream.request_id = rid
    mode = cfg.forward_client_cert_details
    if mode != "always_forward_only":
        if mode == "sanitize" or info.peer is None:
            if xfcc is not None:
                headers = remove(headers, XFCC)
        elif mode != "forward_only":
            mine = client_cert_details(info, cfg.set_current_client_cert_details)
            if mode == "append_forward" and xfcc:
                headers = set_header(headers, XFCC, xfcc + b"," + mine)
            else:
                headers = set_header(headers, XFCC, mine)
    if hcm.tracing is not None and not found & _TRACE_BIT:
        headers.append((TRACEPARENT, new_traceparent(sampled)))
    if not hcm.outbound:
        stream.peer = hcm.peer_labels(peer_md, info.peer)
    # Outbound, our own peer metadata is added per attempt, to mesh (mTLS) upstreams only.
    return headers


def client_cert_details(info, details) -> bytes:
    """Envoy's XFCC element: By=<our URI SAN>;Hash=<peer cert SHA-256>[;Subject="..."][;URI=..][;DNS=..],
    built once per connection (and set of details)."""
    key = ("xfcc", details)
    cached = info._strs.get(key)
    if cached is None:
        cached = info._strs[key] = _client_cert_details(info, details)
    return cached


def _client_cert_details(info, details) -> bytes:
    peer = info.peer
    parts = [f"By={u}" for u in info.local_uri_sans]
    parts.append(f"Hash={peer.sha256}")
    if details.cert:
        parts.append(f'Cert="{_pem_quoted(peer.der)}"')
    if details.subject:
        parts.append(f'Subject="{peer.subject}"')
    if details.uri:
        parts.extend(f"URI={u}" for u in peer.uri_sans) if peer.uri_sans else parts.append("URI=")
    if details.dns:
        parts.extend(f"DNS={d}" for d in peer.dns_sans)
    return ";".join(parts).encode()


def _pem_quoted(der: bytes) -> str:
    import base64
    from urllib.parse import quote

    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return quote(pem, safe="")


# ---------------------------------------------------------------- route header mutations

_COMPILED: dict[int, tuple] = {}


def _compiled(hv: HeaderValueConfig) -> tuple:
    hit = _COMPILED.get(id(hv))
    if hit is None or hit[0] is not hv:
        if len(_COMPILED) > 20000:
            _COMPILED.clear()
        from isthmus.proxy.runtime.formatter import compile_template  # runtime imports filters

        literal = hv.literal.encode("latin-1", "replace") if hv.literal is not None else None
        fn = None if literal is not None else compile_template(hv.value)
        hit = _COMPILED[id(hv)] = (hv, hv.key.encode(), literal, fn)
    return hit


def apply_mutations(headers: list, levels: tuple[HeaderMutations, ...], ctx) -> list:
    """Apply each level's removals then additions, in order; returns the new list."""
    for level in levels:
        for name in level.remove:
            headers = remove(headers, name.encode())
        for hv in level.add:
            _, key, value, fn = _compiled(hv)
            if value is None:
                v = fn(ctx)
                value = b"" if v is None else str(v).encode("latin-1", "replace")
            if not value and not hv.keep_empty_value:
                continue
            action = hv.append_action
            if action == "append_if_exists_or_add":
                headers.append((key, value))
            elif action == "add_if_absent":
                if get(headers, key) is None:
                    headers.append((key, value))
            elif action == "overwrite_if_exists_or_add":
                headers = set_header(headers, key, value)
            elif get(headers, key) is not None:  # overwrite_if_exists
                headers = set_header(headers, key, value)
    return headers
