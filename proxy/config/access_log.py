"""Access logs (HCM, tcp_proxy, listener, router upstream_log) → `AccessLogConfig`.

File loggers (`envoy.access_loggers.file`) and stdout/stderr stream loggers; the format
is Envoy's default text line, an inline text format, or a JSON map — every string
pre-parsed into a `Template` so logging a request does no parsing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as sfs_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2

from isthmus.proxy.config.common import DATA_SOURCE, by_name, struct_dict, unpack
from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.formatter import Template, parse_format

# Envoy's default access log format (used when a logger sets no format).
DEFAULT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

ACCESS_LOG = Fields(accesslog_pb2.AccessLog, {"name", "typed_config"})
FILE_LOG = Fields(file_pb2.FileAccessLog, {"path", "format", "json_format", "log_format"})
STDOUT_LOG = Fields(stream_pb2.StdoutAccessLog, {"log_format"})
STDERR_LOG = Fields(stream_pb2.StderrAccessLog, {"log_format"})
FORMAT = Fields(sfs_pb2.SubstitutionFormatString,
                {"text_format", "json_format", "text_format_source", "omit_empty_values", "content_type"},
                {"json_format_options": "key order only"})
LOGGERS = by_name(file_pb2.FileAccessLog, stream_pb2.StdoutAccessLog, stream_pb2.StderrAccessLog)

# A JSON format value: a Template (string), a literal (number/bool/null), or a nested map.
JsonValue = Union[Template, "JsonFormat", Any]


@dataclass(frozen=True, slots=True)
class JsonFormat:
    fields: tuple[tuple[str, JsonValue], ...]


@dataclass(frozen=True, slots=True)
class AccessLogConfig:
    name: str
    path: str  # /dev/stdout, /dev/stderr, or a file
    text: Template | None = None  # exactly one of text / json
    json: JsonFormat | None = None
    omit_empty_values: bool = False
    content_type: str = ""


def _json(value: Any, where: Where) -> JsonValue:
    if isinstance(value, str):
        return parse_format(value, where)
    if isinstance(value, dict):
        return JsonFormat(tuple((k, _json(v, where.key(k))) for k, v in value.items()))
    if isinstance(value, list):
        raise where.unsupported("lists are not supported in json_format")
    return value


def _struct_to_json(s, where: Where) -> JsonFormat:
    return _json(struct_dict(s), where)  # type: ignore[return-value]


def substitution_format(msg: sfs_pb2.SubstitutionFormatString, where: Where) -> tuple[Template | None, JsonFormat | None, bool, str]:
    FORMAT.check(msg, where)
    which = msg.WhichOneof("format")
    if which == "json_format":
        return None, _struct_to_json(msg.json_format, where.at("json_format")), msg.omit_empty_values, msg.content_type
    if which == "text_format":
        return parse_format(msg.text_format, where.at("text_format")), None, msg.omit_empty_values, msg.content_type
    if which == "text_format_source":
        src, w = msg.text_format_source, where.at("text_format_source")
        DATA_SOURCE.check(src, w)
        kind = src.WhichOneof("specifier")
        if kind not in ("inline_string", "inline_bytes"):
            raise w.unsupported("only an inline text format is supported")
        text = src.inline_string if kind == "inline_string" else src.inline_bytes.decode()
        return parse_format(text, w), None, msg.omit_empty_values, msg.content_type
    raise where.invalid("SubstitutionFormatString needs text_format, text_format_source or json_format")


def access_log(msg: accesslog_pb2.AccessLog, where: Where) -> AccessLogConfig:
    ACCESS_LOG.check(msg, where)
    cfg = unpack(msg.typed_config, where.at("typed_config"), LOGGERS)
    w = where.at("typed_config")
    if isinstance(cfg, file_pb2.FileAccessLog):
        FILE_LOG.check(cfg, w)
        path = cfg.path
        which = cfg.WhichOneof("access_log_format")
        if which == "log_format":
            text, js, omit, ctype = substitution_format(cfg.log_format, w.at("log_format"))
        elif which == "format":
            text, js, omit, ctype = parse_format(cfg.format, w.at("format")), None, False, ""
        elif which == "json_format":
            text, js, omit, ctype = None, _struct_to_json(cfg.json_format, w.at("json_format")), False, ""
        else:
            text, js, omit, ctype = parse_format(DEFAULT_FORMAT, w), None, False, ""
    else:
        (STDOUT_LOG if isinstance(cfg, stream_pb2.StdoutAccessLog) else STDERR_LOG).check(cfg, w)
        path = "/dev/stdout" if isinstance(cfg, stream_pb2.StdoutAccessLog) else "/dev/stderr"
        if cfg.HasField("log_format"):
            text, js, omit, ctype = substitution_format(cfg.log_format, w.at("log_format"))
        else:
            text, js, omit, ctype = parse_format(DEFAULT_FORMAT, w), None, False, ""
    return AccessLogConfig(msg.name, path, text, js, omit, ctype)


def access_logs(logs, where: Where) -> tuple[AccessLogConfig, ...]:
    return tuple(access_log(a, where.idx(i)) for i, a in enumerate(logs))
