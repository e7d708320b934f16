"""Evaluate parsed substitution formats (config/formatter.py Templates) against a
finished (or in-flight) stream or TCP session, for access logs and header values.

`compile_template(template)` → `fn(ctx)`: a template that is exactly one operator
yields the operator's typed value (int for codes/bytes/durations, str, or None when
not available: JSON logs print null, text "-"); otherwise the pieces are joined.
The context is duck-typed; what it must provide (HTTP `Stream`, `TcpSession`):

    start_wall, start, end (loop times), protocol, status, details, flags,
    bytes_in, bytes_out, attempts, route_name, cluster_name, upstream (HostInfo|None),
    upstream_local, transport_failure, downstream (ConnInfo), request_header(name),
    header_map(0 request | 1 response | 2 trailers) -> {lowercase bytes: bytes}, grpc_status()

Access logs compile a whole format into one generated function instead
(`compile_text_format`, `compile_json_format`, at the end of this module): same
values, without a closure call and a type dispatch per operator.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from isthmus.proxy.config.formatter import Operator, Template
from isthmus.proxy.filters.local_reply import _FLAG_STRINGS, flags_string

Getter = Callable[[Any], Any]
_HOSTNAME = socket.gethostname()


_SECOND: list = [-1, ""]  # the last second formatted, and its text
_MILLI: list = [-1, -1, ""]  # the last (millisecond, second) formatted, and its text (many requests share one)


def _start_time(fmt: str | None) -> Getter:
    if not fmt:
        def default(c) -> str:
            t = c.start_wall
            ms = int(t * 1000)
            sec = int(t)
            if ms == _MILLI[0] and sec == _MILLI[1]:
                return _MILLI[2]
            if sec != _SECOND[0]:
                _SECOND[0], _SECOND[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            text = "%s.%03dZ" % (_SECOND[1], ms % 1000)
            _MILLI[0], _MILLI[1], _MILLI[2] = ms, sec, text
            return text
        return default
    if fmt == "%s":
        return lambda c: str(int(c.start_wall))

    def custom(c) -> str:
        t = c.start_wall
        f = fmt.replace("%3f", "%03d" % (int(t * 1000) % 1000)).replace("%6f", "%06d" % (int(t * 1e6) % 1000000))
        f = f.replace("%f", "%09d" % (int(t * 1e9) % 1000000000))
        return time.strftime(f, time.gmtime(t))
    return custom


def _ms(a, b) -> int | None:
    return None if a is None or b is None else int((b - a) * 1000)


def _addr(which: str, part: str) -> Getter:
    if part == "full":
        def full(c):
            d = c.downstream
            return d.address_text(which) if d is not None else None
        return full

    def get(c):
        d = c.downstream
        if d is None:
            return None
        value = getattr(d, which)
        if value is None:
            return None
        host, port = value
        if part == "host":
            return host
        if part == "port":
            return port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return get


def _upstream_addr(part: str) -> Getter:
    def get(c):
        u = c.upstream
        if u is None:
            return None
        if part == "host":
            return u.host.address
        if part == "port":
            return u.host.port
        return u.host.address_string
    return get


def _peer(attr: str, local: bool = False) -> Getter:
    def get(c):
        d = c.downstream
        if d is None:
            return None
        if local:
            sans = d.local_uri_sans
            return ",".join(sans) if sans else None
        peer = d.peer
        if peer is None:
            return None
        value = getattr(peer, attr)
        if isinstance(value, tuple):
            return ",".join(value) if value else None
        return value or None
    return get


_SIMPLE: dict[str, Getter] = {
    "PROTOCOL": lambda c: c.protocol,
    "UPSTREAM_PROTOCOL": lambda c: c.upstream_protocol,
    "RESPONSE_CODE": lambda c: c.status,
    "RESPONSE_CODE_DETAILS": lambda c: c.details or None,
    "CONNECTION_TERMINATION_DETAILS": lambda c: None,
    "RESPONSE_FLAGS": lambda c: flags_string(c.flags),
    "RESPONSE_FLAGS_LONG": lambda c: flags_string(c.flags),
    "BYTES_RECEIVED": lambda c: c.bytes_in,
    "BYTES_SENT": lambda c: c.bytes_out,
    "DURATION": lambda c: _ms(c.start, c.end if c.end is not None else c.now()),
    "REQUEST_DURATION": lambda c: _ms(c.start, c.request_end),
    "REQUEST_TX_DURATION": lambda c: _ms(c.start, c.request_end),
    "RESPONSE_DURATION": lambda c: _ms(c.start, c.response_start),
    "RESPONSE_TX_DURATION": lambda c: _ms(c.response_start, c.end),
    "ROUNDTRIP_DURATION": lambda c: None,
    "DOWNSTREAM_HANDSHAKE_DURATION": lambda c: None,
    "UPSTREAM_HOST": _upstream_addr("full"),
    "UPSTREAM_HOST_NAME": lambda c: (c.upstream.host.hostname or c.upstream.host.address) if c.upstream else None,
    "UPSTREAM_CLUSTER": lambda c: c.cluster_name or None,
    "UPSTREAM_CLUSTER_RAW": lambda c: c.cluster_name or None,
    "UPSTREAM_LOCAL_ADDRESS": lambda c: c.upstream_local or None,
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": lambda c: c.upstream_local.rpartition(":")[0] if c.upstream_local else None,
    "UPSTREAM_LOCAL_PORT": lambda c: int(c.upstream_local.rpartition(":")[2]) if c.upstream_local else None,
    "UPSTREAM_REMOTE_ADDRESS": _upstream_addr("full"),
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": _upstream_addr("host"),
    "UPSTREAM_REMOTE_PORT": _upstream_addr("port"),
    "UPSTREAM_TRANSPORT_FAILURE_REASON": lambda c: c.transport_failure or None,
    "UPSTREAM_REQUEST_ATTEMPT_COUNT": lambda c: c.attempts,
    "DOWNSTREAM_LOCAL_ADDRESS": _addr("local", "full"),
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": _addr("local", "host"),
    "DOWNSTREAM_LOCAL_PORT": _addr("local", "port"),
    "DOWNSTREAM_REMOTE_ADDRESS": _addr("remote", "full"),
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": _addr("remote", "host"),
    "DOWNSTREAM_REMOTE_PORT": _addr("remote", "port"),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": _addr("remote", "full"),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": _addr("remote", "host"),
    "DOWNSTREAM_DIRECT_REMOTE_PORT": _addr("remote", "port"),
    "CONNECTION_ID": lambda c: c.downstream.conn_id if c.downstream else None,
    "STREAM_ID": lambda c: c.request_header("x-request-id"),
    "REQUESTED_SERVER_NAME": lambda c: (c.downstream.sni or None) if c.downstream else None,
    "ROUTE_NAME": lambda c: c.route_name or None,
    "VIRTUAL_CLUSTER_NAME": lambda c: None,
    "FILTER_CHAIN_NAME": lambda c: c.downstream.chain_name if c.downstream else None,
    "HOSTNAME": lambda c: _HOSTNAME,
    "LOCAL_REPLY_BODY": lambda c: None,
    "ACCESS_LOG_TYPE": lambda c: None,
    "DOWNSTREAM_PEER_URI_SAN": _peer("uri_sans"),
    "DOWNSTREAM_LOCAL_URI_SAN": _peer("", local=True),
    "DOWNSTREAM_PEER_DNS_SAN": _peer("dns_sans"),
    "DOWNSTREAM_PEER_SUBJECT": _peer("subject"),
    "DOWNSTREAM_PEER_FINGERPRINT_256": _peer("sha256"),
    "DOWNSTREAM_TLS_VERSION": lambda c: c.downstream.tls_version if c.downstream else None,
    "DOWNSTREAM_TLS_CIPHER": lambda c: c.downstream.tls_cipher if c.downstream else None,
    "GRPC_STATUS": lambda c: c.grpc_status(),
    "GRPC_STATUS_NUMBER": lambda c: int(c.grpc_status()) if (c.grpc_status() or "").isdigit() else None,
    "TRACE_ID": lambda c: _trace_id(c.request_header("traceparent")),
    "PATH": lambda c: c.request_header(":path"),
}


def _trace_id(traceparent: str | None) -> str | None:
    if traceparent and len(traceparent) >= 35:
        return traceparent[3:35]
    return None


def _header(kind: str, names: tuple[str, ...]) -> Getter:
    """%REQ(a?b)% and friends: the first of the names present. Regular headers come
    from the context's bytes map (built once per request); pseudo-headers by name."""
    which = 1 if kind == "RESP" else 2 if kind == "TRAILER" else 0
    keys = tuple((n, n.encode("latin-1"), n[:1] == ":") for n in names)
    if len(keys) == 1:  # the usual %REQ(x)%: no loop
        name, key, pseudo = keys[0]
        if pseudo:
            def get(c):
                return c.request_header(name) if which == 0 else None
        else:
            def get(c):
                v = c.header_map(which).get(key)
                return v.decode("latin-1") if v is not None else None
        if kind == "REQ_WITHOUT_QUERY":
            def without_query(c):
                v = get(c)
                return v.partition("?")[0] if v is not None else None
            return without_query
        return get

    def get(c):
        m = c.header_map(which)
        for name, key, pseudo in keys:
            if pseudo:
                v = c.request_header(name) if which == 0 else None
                if v is not None:
                    return v
                continue
            v = m.get(key)
            if v is not None:
                return v.decode("latin-1")
        return None
    if kind == "REQ_WITHOUT_QUERY":
        def without_query(c):
            v = get(c)
            return v.partition("?")[0] if v is not None else None
        return without_query
    return get


def operator_getter(op: Operator) -> Getter:
    cmd = op.command
    if cmd in ("REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY"):
        get = _header(cmd, op.args)
    elif cmd in ("START_TIME", "EMIT_TIME"):
        get = _start_time(op.args[0] if op.args else None)
    elif cmd == "ENVIRONMENT":
        value = os.environ.get(op.args[0]) if op.args else None
        get = lambda c: value  # noqa: E731
    else:
        get = _SIMPLE.get(cmd, lambda c: None)
    if op.max_length is None:
        return get
    n = op.max_length

    def truncated(c):
        v = get(c)
        return v[:n] if isinstance(v, str) else v
    return truncated


def compile_template(template: Template) -> Getter:
    if not template:
        return lambda c: ""
    if len(template) == 1:
        piece = template[0]
        if isinstance(piece, str):
            return lambda c: piece
        return operator_getter(piece)
    parts: list = [p if isinstance(p, str) else operator_getter(p) for p in template]

    def joined(c) -> str:
        out = []
        for p in parts:
            if p.__class__ is str:
                out.append(p)
            else:
                v = p(c)
                out.append("-" if v is None else str(v))
        return "".join(out)
    return joined


def text(value) -> str:
    return "-" if value is None else str(value)


# -- whole formats compiled into one function (access logs) --------------------------------
#
# A log line evaluates ~25 operators per request; calling one closure per operator and
# dispatching on each value's type is most of its cost. `compile_text_format` and
# `compile_json_format` generate one Python function per format instead: simple
# operators become attribute reads inlined in it, single-name header operators a
# lookup in the header map fetched once, the rest call their usual getter. Values
# (and so output) are exactly those of `operator_getter`.

# Operators that are one expression over the context `c` (as in _SIMPLE).
_INLINE = {
    "PROTOCOL": "c.protocol",
    "UPSTREAM_PROTOCOL": "c.upstream_protocol",
    "RESPONSE_CODE": "c.status",
    "RESPONSE_CODE_DETAILS": "(c.details or None)",
    "CONNECTION_TERMINATION_DETAILS": "None",
    "RESPONSE_FLAGS": "(FLAGS.get(c.flags) or flags_string(c.flags))",
    "RESPONSE_FLAGS_LONG": "(FLAGS.get(c.flags) or flags_string(c.flags))",
    "BYTES_RECEIVED": "c.bytes_in",
    "BYTES_SENT": "c.bytes_out",
    "UPSTREAM_CLUSTER": "(c.cluster_name or None)",
    "UPSTREAM_CLUSTER_RAW": "(c.cluster_name or None)",
    "UPSTREAM_LOCAL_ADDRESS": "(c.upstream_local or None)",
    "UPSTREAM_TRANSPORT_FAILURE_REASON": "(c.transport_failure or None)",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT": "c.attempts",
    "ROUTE_NAME": "(c.route_name or None)",
}
# Operators that are a few statements setting {x} (as their getters above do).
_INLINE_STATEMENTS = {
    "DURATION": ["{x} = c.end", "if {x} is None: {x} = c.now()",
                 "{x} = None if c.start is None or {x} is None else int(({x} - c.start) * 1000)"],
    "UPSTREAM_HOST": ["{x} = c.upstream", "{x} = {x}.host.address_string if {x} is not None else None"],
    "UPSTREAM_REMOTE_ADDRESS": ["{x} = c.upstream", "{x} = {x}.host.address_string if {x} is not None else None"],
    "DOWNSTREAM_LOCAL_ADDRESS": ["{x} = c.downstream", "{x} = {x}.address_text('local') if {x} is not None else None"],
    "DOWNSTREAM_REMOTE_ADDRESS": ["{x} = c.downstream", "{x} = {x}.address_text('remote') if {x} is not None else None"],
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": ["{x} = c.downstream",
                                         "{x} = {x}.address_text('remote') if {x} is not None else None"],
    "REQUESTED_SERVER_NAME": ["{x} = c.downstream", "{x} = ({x}.sni or None) if {x} else None"],
}
_HEADER_MAP = {"REQ": 0, "RESP": 1, "TRAILER": 2}


def _value_statements(ops: list[Operator], ns: dict) -> tuple[list[str], list[bool]]:
    """Statements setting x0..xN to the operators' values over `c`; and, per value,
    whether it is known to be a str or None (header values)."""
    lines: list[str] = []
    is_text: list[bool] = []
    maps: dict[int, str] = {}
    for i, op in enumerate(ops):
        x = f"x{i}"
        expr = _INLINE.get(op.command) if op.max_length is None else None
        text = False
        which = _HEADER_MAP.get(op.command)
        if (expr is None and which is not None and op.max_length is None and op.args[0][:1] != ":"
                and (len(op.args) == 1 or (len(op.args) == 2 and which == 0 and op.args[1][:1] == ":"))):
            m = maps.get(which)
            if m is None:
                m = maps[which] = f"h{which}"
                lines.append(f"{m} = c.header_map({which})")
            ns[f"k{i}"] = op.args[0].encode("latin-1")
            lines.append(f"{x} = {m}.get(k{i})")
            if len(op.args) == 2:  # %REQ(x?:pseudo)%: the header, else the pseudo-header (str or None)
                ns[f"p{i}"] = op.args[1]
                lines.append(f"{x} = {x}.decode('latin-1') if {x} is not None else c.request_header(p{i})")
            else:
                lines.append(f"{x} = {x}.decode('latin-1') if {x} is not None else None")
            text = True
        elif expr is not None:
            lines.append(f"{x} = {expr}")
        elif op.command == "START_TIME" and not op.args and op.max_length is None:  # the default format
            ns[f"g{i}"] = operator_getter(op)
            ns["MILLI"] = _MILLI
            lines.append(f"{x} = c.start_wall")
            lines.append(f"{x} = MILLI[2] if int({x} * 1000) == MILLI[0] and int({x}) == MILLI[1] else g{i}(c)")
        elif op.max_length is None and op.command in _INLINE_STATEMENTS:
            lines.extend(line.format(x=x) for line in _INLINE_STATEMENTS[op.command])
        elif op.max_length is None and op.command == "REQ" and len(op.args) == 1:  # a pseudo-header
            ns[f"p{i}"] = op.args[0]
            lines.append(f"{x} = c.request_header(p{i})")
        else:
            ns[f"g{i}"] = operator_getter(op)
            lines.append(f"{x} = g{i}(c)")
        is_text.append(text)
    return lines, is_text


def _build(name: str, body: list[str], ns: dict) -> Getter:
    src = f"def {name}(c):\n" + "".join(f"    {line}\n" for line in body)
    ns["flags_string"] = flags_string
    ns["FLAGS"] = _FLAG_STRINGS  # flags_string's own cache
    exec(compile(src, f"<access log format {name}>", "exec"), ns)  # noqa: S102 - our own generated source
    return ns[name]


def compile_text_format(template: Template) -> Getter:
    """Like `compile_template` for a log line: ctx → the line (str; "-" for a missing
    value), or the operator's own value when the template is that one operator."""
    if len(template) < 2:
        return compile_template(template)
    ops = [p for p in template if not isinstance(p, str)]
    ns: dict = {}
    lines, _ = _value_statements(ops, ns)
    pieces, n = [], 0
    for p in template:
        if isinstance(p, str):
            pieces.append(repr(p))
        else:
            lines.append(f"x{n} = '-' if x{n} is None else str(x{n})")
            pieces.append(f"x{n}")
            n += 1
    lines.append("return ''.join((" + ", ".join(pieces) + ",))")
    return _build("text_line", lines, ns)


def compile_json_format(fields: list[tuple[str, Any]], encode_str, encode_any) -> Getter | None:
    """ctx → the JSON object text for a flat map of key → Template or literal, with
    the formatting of access_log's JSON encoder: None is null, str via
    `encode_str` (json's ASCII string encoder), int via str(), anything else via
    `encode_any`. Keys are encoded once, here."""
    ops: list[Operator] = []
    slots: list[tuple[str, str | None]] = []  # (key JSON, literal JSON or None for the next operator)
    ns: dict = {"E": encode_str, "J": encode_any}
    for key, value in fields:
        if isinstance(value, tuple) and len(value) == 1 and not isinstance(value[0], str):
            slots.append((encode_str(key), None))
            ops.append(value[0])
        elif isinstance(value, tuple):
            literal = compile_template(value)(None) if all(isinstance(p, str) for p in value) else None
            if literal is None:
                return None  # a mixed template: not worth inlining
            slots.append((encode_str(key), encode_str(literal)))
        else:
            slots.append((encode_str(key), encode_any(value)))
    lines, is_text = _value_statements(ops, ns)
    pieces, literal_run, n = [], "{", 0  # the output: literal text runs and values, joined once
    for j, (key, literal) in enumerate(slots):
        literal_run += ("," if j else "") + key + ":"
        if literal is not None:
            literal_run += literal
            continue
        x = f"x{n}"
        if is_text[n]:
            lines.append(f"{x} = 'null' if {x} is None else E({x})")
        else:
            lines.append(f"{x} = 'null' if {x} is None else E({x}) if {x}.__class__ is str else "
                         f"str({x}) if {x}.__class__ is int else J({x})")
        pieces += (repr(literal_run), x)
        literal_run = ""
        n += 1
    pieces.append(repr(literal_run + "}"))
    lines.append("return ''.join((" + ", ".join(pieces) + ",))")
    return _build("json_line", lines, ns)
