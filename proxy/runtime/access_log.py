"""Access logs: compiled formats written through buffered sinks.

`compile_loggers(configs, sinks)` turns AccessLogConfigs into `Logger`s once per
snapshot: a text template or a flat JSON map becomes one generated function per
format (runtime/formatter.py `compile_text_format` / `compile_json_format`:
unavailable values are null in JSON, "-" in text, numbers stay numbers; JSON keys
are encoded once, string values by json's C encoder); a JSON format with nested
maps or omit_empty_values gathers a dict that json's C encoder writes in one call.
`Sinks` owns one buffered writer per path: /dev/stdout and /dev/stderr write to the
process's streams, anything else is opened for append. Lines are collected and
written when 64 KiB pile up or on the next flush tick (`flush()`, every 0.25 s by
the DataPlane), so logging a request costs formatting plus a list append.
"""
from __future__ import annotations

import json
import os
import sys

from isthmus.proxy.config.access_log import AccessLogConfig, JsonFormat
from isthmus.proxy.runtime.formatter import compile_json_format, compile_template, compile_text_format

FLUSH_BYTES = 64 * 1024


class Sink:
    __slots__ = ("path", "_lines", "_size", "_fd", "_stream")

    def __init__(self, path: str) -> None:
        self.path = path
        self._lines: list[bytes] = []
        self._size = 0
        self._fd = None
        self._stream = None
        if path == "/dev/stdout":
            self._stream = sys.stdout
        elif path == "/dev/stderr":
            self._stream = sys.stderr

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            if self._stream is not None:
                stream = self._stream
                buf = getattr(stream, "buffer", None)
                if buf is not None:
                    buf.write(data)
                else:
                    stream.write(data.decode("utf-8", "replace"))
                stream.flush()
                return
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, data)
        except (OSError, ValueError):
            pass  # a log path we cannot write must never break traffic

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Sinks:
    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}

    def get(self, path: str) -> Sink:
        sink = self._sinks.get(path)
        if sink is None:
            sink = self._sinks[path] = Sink(path)
        return sink

    def flush(self) -> None:
        for sink in self._sinks.values():
            sink.flush()

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()


def _make_dumps():
    """obj → compact JSON text (",", ":"), ASCII-escaped, unknown types as str():
    json's C encoder called directly, without json.dumps' per-call setup."""
    from json.encoder import encode_basestring_ascii

    try:
        from json.encoder import c_make_encoder
    except ImportError:  # pragma: no cover - CPython always has _json
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(separators=(",", ":"), default=str).encode
    encoder = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", False, False, True)
    join = "".join
    return lambda obj: join(encoder(obj, 0))


_dumps = _make_dumps()


def _json_encoder(fmt: JsonFormat, omit_empty: bool):
    """A function ctx → the JSON object text: for a flat format that keeps empty
    values (Istio's), one generated function (formatter.compile_json_format); else
    the values are gathered into a dict (in the format's key order) and encoded by
    json's C encoder in one call."""
    if not omit_empty and not any(isinstance(v, JsonFormat) for _, v in fmt.fields):
        from json.encoder import encode_basestring_ascii

        line = compile_json_format(list(fmt.fields), encode_basestring_ascii, _dumps)
        if line is not None:
            return line
    build = _json_builder(fmt, omit_empty)
    dumps = _dumps
    return lambda ctx: dumps(build(ctx))


def _json_builder(fmt: JsonFormat, omit_empty: bool):
    """A function ctx → {key: value} for one (possibly nested) JSON format: None is
    null (omitted, like "", with omit_empty); numbers stay numbers."""
    fields = []
    for key, value in fmt.fields:
        if isinstance(value, JsonFormat):
            fields.append((key, _json_builder(value, omit_empty), True))
        elif isinstance(value, tuple):
            fields.append((key, compile_template(value), False))
        else:
            fields.append((key, (lambda v: (lambda c: v))(value), False))
    if not omit_empty:
        pairs = tuple((key, get) for key, get, _ in fields)
        return lambda ctx: {key: get(ctx) for key, get in pairs}
    fields = tuple(fields)

    def build(ctx) -> dict:
        out = {}
        for key, get, nested in fields:
            v = get(ctx)
            if nested or (v is not None and v != ""):
                out[key] = v
        return out
    return build


class Logger:
    __slots__ = ("sink", "_text", "_json", "_omit")

    def __init__(self, config: AccessLogConfig, sinks: Sinks) -> None:
        self.sink = sinks.get(config.path)
        self._omit = config.omit_empty_values
        self._text = compile_text_format(config.text) if config.text is not None else None
        self._json = _json_encoder(config.json, self._omit) if config.json is not None else None

    def format(self, ctx) -> bytes:
        if self._json is not None:
            return self._json(ctx).encode("utf-8", "replace") + b"\n"
        v = self._text(ctx) if self._text is not None else ""
        line = "-" if v is None else str(v)
        return line.encode("utf-8", "replace")

    def log(self, ctx) -> None:
        try:
            self.sink.write(self.format(ctx))
        except Exception:  # noqa: BLE001 - a broken format value must not break the request
            pass


def compile_loggers(configs: tuple[AccessLogConfig, ...], sinks: Sinks) -> tuple[Logger, ...]:
    return tuple(Logger(c, sinks) for c in configs)
