"""Pure checks shared by every kind's semantic validator (Istio's webhook rules).

Each `check_*` helper takes `(value, path, f)`, records problems in `f` and never
raises; most return a bool (or a parsed value) so callers can chain rules.
`*_error` helpers and `parse_*` are plain predicates that touch no `Findings`.
Names follow Istio's pkg/config/validation (`ValidateWildcardDomain` → `wildcard_domain_error`).
"""
from __future__ import annotations

import dataclasses
import http
import ipaddress
import re
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import re2

from isthmus.shared.config.spec import EMPTY_MAP, Spec
from isthmus.shared.config.validation.report import Findings, at

# Istio's labels.IsDNS1123Label accepts either case; Kubernetes object names do not.
DNS1123_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
DNS1123_LABEL_LOWER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")  # RFC 7230 tchar
HEADER_NAME = re.compile(r"^[-_A-Za-z0-9]+$")
PROBE_HEADER_NAME = re.compile(r"^[-A-Za-z0-9]+$")
PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
JWT_CLAIM_PREFIX = "@request.auth.claims"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_REGEX_LENGTH = 1024  # Istio approximates Envoy's RE2 program-size limit by length
RE2_DOC = "Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
UNIX_PREFIX = "unix://"
# Istio's protocol.Parse, upper-cased; anything else is "Unsupported".
PROTOCOLS = frozenset({"HTTP", "HTTPS", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB", "TCP", "TLS", "UDP",
                       "MONGO", "REDIS", "MYSQL", "HBONE"})
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def with_empty_collections(value: Any) -> Any:
    """A copy of a typed spec where `null` lists and maps read as empty, at every depth.

    The API server prunes nulls, so `endpoints: null` means "no endpoints"; validators
    can then iterate every list and map without guarding against None.
    """
    if not isinstance(value, Spec):
        return value
    changes: dict[str, Any] = {}
    for _, attr, shape, _ in value._FIELDS:
        current = getattr(value, attr)
        if shape == "l":
            changes[attr] = tuple(with_empty_collections(v) for v in current or ())
        elif shape == "m":
            changes[attr] = MappingProxyType({k: with_empty_collections(v) for k, v in current.items()}) \
                if current else EMPTY_MAP
        elif shape == "o" and current is not None:
            changes[attr] = with_empty_collections(current)
    return dataclasses.replace(value, **changes)


def key(path: str, name: Any) -> str:
    """Path of a map entry: key("spec.selector", "app") → "spec.selector[app]"."""
    return f"{path}[{name}]"


# ---------------------------------------------------------------- durations

def parse_duration(text: Any) -> float | None:
    """Seconds in a Go/protobuf duration ("1.5s", "300ms", "1h30m", "-2s"); None if malformed."""
    if not isinstance(text, str) or not text:
        return None
    sign, body = (-1.0, text[1:]) if text[0] == "-" else (1.0, text.removeprefix("+"))
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or pos == 0:
        return None
    return sign * total


def format_seconds(seconds: float) -> str:
    """Human form of a duration for messages: 0.0005 → "500us", 2.0 → "2s"."""
    if seconds != 0 and abs(seconds) < 1e-3:
        return f"{round(seconds * 1e6, 3):g}us"
    if abs(seconds) < 1:
        return f"{round(seconds * 1e3, 6):g}ms"
    return f"{round(seconds, 9):g}s"


def check_duration(value: Any, path: str, f: Findings, *, minimum: float | None = 1e-3,
                   ms_precision: bool = True) -> float | None:
    """Istio's ValidateDuration: a valid duration, >= `minimum` (1ms), whole milliseconds.

    `minimum=None` only requires a non-negative duration. Returns seconds, or None when invalid/unset.
    """
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is None:
        f.error(path, f"invalid duration {value!r}: use a number with a unit, e.g. '1.5s', '300ms', '1h'")
        return None
    if minimum is not None and seconds < minimum:
        f.error(path, f"duration must be at least {format_seconds(minimum)} (got {value})")
        return None
    if minimum is None and seconds < 0:
        f.error(path, f"duration must not be negative (got {value})")
        return None
    if ms_precision and round(seconds * 1e9) % 1_000_000 != 0:
        f.error(path, f"only durations to ms precision are supported (got {value})")
        return None
    return seconds


# ---------------------------------------------------------------- numbers

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_range(value: Any, lo: float, hi: float, path: str, f: Findings, what: str = "") -> bool:
    """`lo <= value <= hi`; message `must be between lo and hi (got v)`."""
    if value is None:
        return True
    if not _is_number(value) or not lo <= value <= hi:
        prefix = f"{what} " if what else ""
        f.error(path, f"{prefix}must be between {lo:g} and {hi:g} (got {value})")
        return False
    return True


def check_percentage(value: Any, path: str, f: Findings) -> bool:
    """An integer or fractional percentage: 0..100."""
    return check_range(value, 0, 100, path, f)


def check_fractional_percent(value: Any, path: str, f: Findings) -> bool:
    """Istio's validatePercentage for `Percent.value`: 0, or 0.0001..100 (Envoy's resolution)."""
    if value is None:
        return True
    if not _is_number(value) or value < 0 or value > 100 or 0 < value < 0.0001:
        f.error(path, f"must be 0 or between 0.0001 and 100 (got {value})")
        return False
    return True


def check_port(value: Any, path: str, f: Findings) -> bool:
    """A TCP/UDP port number: 1..65535."""
    if value is None:
        return True
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        f.error(path, f"port number must be between 1 and 65535 (got {value})")
        return False
    return True


def check_non_negative(value: Any, path: str, f: Findings) -> bool:
    if _is_number(value) and value < 0:
        f.error(path, f"must be non-negative (got {value})")
        return False
    return True


def check_positive(value: Any, path: str, f: Findings) -> bool:
    if _is_number(value) and value <= 0:
        f.error(path, f"must be greater than 0 (got {value})")
        return False
    return True


def check_http_status(value: Any, path: str, f: Findings) -> bool:
    """An HTTP status an Envoy route may return: 200..599."""
    if value is None:
        return True
    if not isinstance(value, int) or isinstance(value, bool) or not 200 <= value <= 599:
        f.error(path, f"HTTP status must be between 200 and 599 (got {value})")
        return False
    return True


def check_redirect_code(value: Any, path: str, f: Findings) -> bool:
    """A redirect status code: 3xx (0/unset means Envoy's default 301)."""
    if value in (None, 0):
        return True
    if not isinstance(value, int) or isinstance(value, bool) or not 300 <= value <= 399:
        f.error(path, f"{value} is not a valid redirect code, must be 3xx (300-399)")
        return False
    return True


def is_http_status_code(text: str) -> bool:
    """Go's `http.StatusText(code) != ""`: a registered HTTP status code."""
    if not text.isdigit():
        return False
    try:
        http.HTTPStatus(int(text))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- hosts and names

def dns1123_labels_error(domain: str, shown: str | None = None) -> str | None:
    """Istio's validateDNS1123Labels: every label valid, top-level label not all-numeric."""
    parts = domain.split(".")
    shown = shown or domain
    if parts[-1].isdigit():
        return f"domain name {shown!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "" and i > 0:
            return None  # trailing dot: "istio.io."
        if len(label) > 63 or not DNS1123_LABEL.match(label):
            return f"domain name {shown!r} invalid (label {label!r} invalid)"
    return None


def _preconditions_error(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {name[:40]!r}... too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def fqdn_error(name: Any) -> str | None:
    """Why `name` is not a valid DNS name without wildcards (Istio's ValidateFQDN), or None."""
    if not isinstance(name, str):
        return "a host name is required"
    return _preconditions_error(name) or dns1123_labels_error(name)


def wildcard_domain_error(name: Any) -> str | None:
    """Istio's ValidateWildcardDomain: a wildcard only as (or leading) the first label.

    `*`, `*.example.com` and Istio's prefix form `*-foo.example.com` pass; `foo.*.com` fails.
    """
    if not isinstance(name, str):
        return "a host name is required"
    pre = _preconditions_error(name)
    if pre:
        return pre
    first, dot, rest = name.partition(".")
    if len(first) > 63 or not WILDCARD_LABEL.match(first):
        return f"domain name {name!r} invalid (label {first!r} invalid)"
    return dns1123_labels_error(rest, name) if dot else None


def partial_wildcard_error(name: str) -> str | None:
    """Istio's ValidatePartialWildCard: `*` alone or `*.` prefix only."""
    if "*" in name and name != "*" and not name.startswith("*."):
        return f"partial wildcard {name!r} not allowed; use '*' or a '*.' prefix such as '*.example.com'"
    return None


def check_fqdn(name: Any, path: str, f: Findings) -> bool:
    err = fqdn_error(name)
    if err:
        f.error(path, err)
    return err is None


def check_wildcard_host(name: Any, path: str, f: Findings) -> bool:
    """A host that may start with a wildcard label (`*`, `*.example.com`); no `*` elsewhere."""
    err = wildcard_domain_error(name)
    if err:
        f.error(path, err)
    return err is None


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: the two (possibly wildcard) hosts select a common name."""
    aw, bw = a.startswith("*"), b.startswith("*")
    if aw and bw:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf: every name `a` selects is also selected by `b`."""
    if a.startswith("*"):
        return b.startswith("*") and a[1:].endswith(b[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return False
    return True


def check_ip(value: Any, path: str, f: Findings) -> bool:
    if value is not None and not is_ip(value):
        f.error(path, f"{value!r} is not a valid IP address")
        return False
    return True


def check_ip_or_cidr(value: Any, path: str, f: Findings) -> bool:
    """Istio's ValidateIPSubnet: an IP address or a CIDR block (host bits may be set)."""
    if value is None:
        return True
    text = str(value)
    try:
        if text.count("/") == 1:
            ipaddress.ip_network(text, strict=False)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        f.error(path, f"{text!r} is not a valid IP address or CIDR block (e.g. 10.0.0.1 or 10.0.0.0/16)")
        return False
    return True


def unix_address_error(addr: str) -> str | None:
    """Istio's ValidateUnixAddress (after `unix://`): an absolute file path or `@abstract`."""
    if not addr:
        return "unix address must not be empty"
    if addr.startswith("@"):
        return None
    if not addr.startswith("/") or addr.endswith("/"):
        return f"{addr} is not an absolute path to a file"
    return None


def check_unix_address(addr: str, path: str, f: Findings) -> bool:
    err = unix_address_error(addr)
    if err:
        f.error(path, err)
    return err is None


def is_dns1123_label(value: Any) -> bool:
    """Istio's labels.IsDNS1123Label (either case, at most 63 characters)."""
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1123_LABEL.match(value))


def check_dns1123_label(value: Any, path: str, f: Findings, what: str = "name") -> bool:
    if not is_dns1123_label(value):
        f.error(path, f"invalid {what} {value!r}: must be a DNS-1123 label "
                      "(alphanumeric or '-', at most 63 characters)")
        return False
    return True


def check_protocol(value: Any, path: str, f: Findings, *, allow_empty: bool = True) -> bool:
    """Istio's ValidateProtocol: a known protocol name (case-insensitive); empty means sniffing."""
    if (value in (None, "") and allow_empty) or str(value or "").upper() in PROTOCOLS:
        return True
    known = ", ".join(sorted(PROTOCOLS))
    f.error(path, f"unsupported protocol {value!r}; use one of {known}")
    return False


def _host_part(host: str, path: str, f: Findings, gateway: bool) -> None:
    if host != "*" and "." not in host:
        f.error(path, f"short names (non FQDN) are not allowed (got {host!r}); use a fully qualified name or '*'")
    err = wildcard_domain_error(host)
    if err and not (gateway and is_ip(host)):
        f.error(path, err)
    elif not err:
        perr = partial_wildcard_error(host)
        if perr:
            f.error(path, perr)


def check_namespaced_host(value: Any, path: str, f: Findings, *, gateway: bool = False) -> None:
    """Istio's ValidateNamespaceSlashWildcardHostname (Sidecar egress, Gateway servers).

    `ns/dnsName` where ns is `*`, `.`, a DNS-1123 label, or `~` in a Sidecar; a Gateway
    also accepts a bare dnsName and an IP address. Short names and partial wildcards fail.
    """
    text = str(value)
    ns, sep, host = text.partition("/")
    if not sep:
        if gateway:
            _host_part(text, path, f, gateway)
        else:
            f.error(path, f"host must be of form namespace/dnsName (got {text!r}), e.g. './*' or 'istio-system/*'")
        return
    if not ns or not host:
        f.error(path, f"config namespace and dnsName in host entry cannot be empty (got {text!r})")
        return
    allowed = ("*", ".") if gateway else ("*", ".", "~")
    if ns not in allowed and not is_dns1123_label(ns):
        f.error(path, f"invalid namespace value {ns!r} in {'gateway' if gateway else 'sidecar'}")
    _host_part(host, path, f, gateway)


def check_export_to(values: Iterable[str], namespace: str, path: str, f: Findings, *,
                    service_entry: bool = False, workload_selector: bool = False) -> None:
    """Istio's validateExportTo: `.`, `*`, namespace names (and `~` for ServiceEntry), no duplicates."""
    values = list(values)
    seen: set[str] = set()
    for i, e in enumerate(values):
        k, p = (namespace if e == "." else e), at(path, i)
        if k in seen:
            detail = f": . and current namespace {namespace}" if k != e else f" for entry {e}"
            f.error(p, f"duplicate entries in exportTo{detail}")
        elif e == "~" and not service_entry:
            f.error(p, "exportTo ~ (none) is not allowed for Istio configuration objects")
        elif e not in (".", "*", "~") and not is_dns1123_label(e):
            f.error(p, f"invalid exportTo value {e!r}: only '.', '*' or a valid DNS 1123 label is allowed")
        else:
            seen.add(k)
    if workload_selector and seen:
        if namespace not in seen:
            f.error(path, "destination rule with workload selector cannot have exportTo beyond current namespace")
        elif len(seen) > 1:
            f.error(path, "destination rule with workload selector cannot have multiple entries in exportTo")
    if "*" in seen and len(values) > 1:
        f.error(path, "cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(values) > 1:
        f.error(path, "cannot export service entry to no one (~) and someone")


# ---------------------------------------------------------------- labels and selectors

def label_key_error(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "label key must not be empty"
    prefix, slash, rest = name.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return f"invalid label key {name!r}: prefix must be a DNS-1123 subdomain"
    if not rest or len(rest) > 63 or not QUALIFIED_NAME.match(rest):
        return (f"invalid label key {name!r}: name must be 63 characters or less, alphanumeric, "
                "'-', '_' or '.', starting and ending with alphanumeric")
    return None


def label_value_error(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
        return (f"invalid label value {value!r}: 63 characters or less, alphanumeric, "
                "'-', '_' or '.', starting and ending with alphanumeric")
    return None


def check_labels(labels: Mapping[str, Any] | None, path: str, f: Findings) -> bool:
    """Kubernetes label keys (qualified names) and values (Istio's labels.Instance.Validate)."""
    ok = True
    for k, v in (labels or {}).items():
        err = label_key_error(k) or label_value_error(v)
        if err:
            f.error(key(path, k), err)
            ok = False
    return ok


def check_workload_selector(selector: Any, path: str, f: Findings, *, subject: str = "") -> None:
    """Istio's validateWorkloadSelector: no empty keys, no wildcards; warn when it has no labels.

    Works with `matchLabels` (type.v1beta1) and `labels` (networking.v1alpha3) selectors.
    """
    if selector is None:
        return
    field_name = "matchLabels" if hasattr(selector, "match_labels") else "labels"
    labels = getattr(selector, "match_labels", None) or getattr(selector, "labels", None) or {}
    for k, v in labels.items():
        p = key(at(path, field_name), k)
        if k == "":
            f.error(p, f"empty key is not supported in selector: '{k}={v}'")
        elif "*" in k or "*" in str(v):
            f.error(p, f"wildcard is not supported in selector: '{k}={v}'")
        else:
            err = label_key_error(k) or label_value_error(v)
            if err:
                f.error(p, err)
    if not labels:
        tail = f"; it will be applied to all {subject} in the namespace" if subject else ""
        f.warn(path, f"workload selector specified without labels{tail}")


# ---------------------------------------------------------------- headers

def is_jwt_claim_header(name: str) -> bool:
    """`@request.auth.claims.sub` / `@request.auth.claims[a][b]` (gateway-only routing on JWT claims)."""
    rest = name.removeprefix(JWT_CLAIM_PREFIX)
    return rest != name and (
        (rest.startswith(".") and len(rest) > 1)
        or (rest.startswith("[") and rest.endswith("]") and len(rest) > 2)
    )


def check_header_name(name: Any, path: str, f: Findings) -> bool:
    """A header name a proxy may emit (Istio's strict form): letters, digits, '-' and '_'."""
    if not name:
        f.error(path, "header name cannot be empty")
        return False
    if not isinstance(name, str) or not HEADER_NAME.match(name):
        f.error(path, f"header name {name!r} is not a valid header name (letters, digits, '-' or '_')")
        return False
    return True


def check_token_header_name(name: Any, path: str, f: Findings) -> bool:
    """Any HTTP header name: a non-empty RFC 7230 token."""
    if not name:
        f.error(path, "header name cannot be empty")
        return False
    if not isinstance(name, str) or not HEADER_TOKEN.match(name):
        f.error(path, f"header name {name!r} is not a valid header name (an RFC 7230 token)")
        return False
    return True


def check_match_header_name(name: Any, path: str, f: Findings) -> bool:
    """Istio's ValidateHTTPHeaderNameOrJwtClaimRoute: a token, a pseudo-header or a JWT claim."""
    if isinstance(name, str) and (name in PSEUDO_HEADERS or is_jwt_claim_header(name)):
        return True
    return check_token_header_name(name, path, f)


def check_cors_header_name(name: Any, path: str, f: Findings) -> bool:
    """Istio's ValidateCORSHTTPHeaderName: a token or `*`."""
    return name == "*" or check_token_header_name(name, path, f)


def check_probe_header_name(name: Any, path: str, f: Findings) -> bool:
    """Istio's ValidateProbeHeaderName (Kubernetes' rule): letters, digits and '-'."""
    if not name:
        f.error(path, "header name cannot be empty")
        return False
    if not PROBE_HEADER_NAME.match(str(name)):
        f.error(path, f"header name {name!r} is not a valid header name (letters, digits or '-')")
        return False
    return True


def _is_authority(name: str) -> bool:
    return name.lower() in (":authority", "host")


def check_header_operation_name(name: Any, path: str, f: Findings, *, allow_authority: bool = False) -> bool:
    """Istio's header-manipulation names: no pseudo-headers and no Host.

    `allow_authority=True` (request add/set, as ValidateHTTPHeaderWithAuthorityOperationName)
    permits `:authority`/`host`, which rewrite the authority.
    """
    if not name:
        f.error(path, "header name cannot be empty")
        return False
    text = str(name)
    if allow_authority and _is_authority(text):
        return True
    if text.lower() == "host":
        f.error(path, f"invalid header {text!r}: cannot set Host header; use rewrite.authority")
        return False
    if text.startswith(":"):
        f.error(path, f"invalid header {text!r}: header cannot have \":\" prefix")
        return False
    return True


def header_value_error(value: str) -> str | None:
    """Istio's ValidateHTTPHeaderValue: no control characters; `%VAR%` / `%VAR(...)%` well formed."""
    if _CONTROL_CHARS.search(value):
        return f"header value {value!r} contains control characters"
    state, i = "literal", 0
    while i < len(value):
        ch, nxt = value[i], value[i + 1] if i + 1 < len(value) else None
        if state == "literal":
            if ch == "%":
                if nxt is None:
                    return f"header value {value!r}: un-escaped '%'; write a literal percent as '%%'"
                if nxt == "%":
                    i += 1
                else:
                    state = "var"
        elif state == "var":
            state = "literal" if ch == "%" else ("array" if ch == "(" else "var")
        elif state == "array":
            state = "expect_string" if ch == "[" else ("array" if ch == " " else "string")
        elif state == "expect_string":
            if ch == '"':
                state = "string"
            elif ch != " ":
                return f"header value {value!r}: expecting '\"' in variable arguments"
        elif state == "string":
            if ch == "\\":
                if nxt is None:
                    return f"header value {value!r}: un-terminated backslash in JSON string"
                i += 1
            elif ch == ")":
                state = "var_end"
            elif ch == '"':
                state = "delimiter"
        elif state == "delimiter":
            if ch == ",":
                state = "expect_string"
            elif ch == "]":
                state = "args_end"
            elif ch != " ":
                return f"header value {value!r}: expecting ',', ']' or whitespace in variable arguments"
        elif state == "args_end":
            if ch == ")":
                state = "var_end"
            elif ch != " ":
                return f"header value {value!r}: expecting ')' after variable arguments"
        elif state == "var_end":
            if ch == "%":
                state = "literal"
            elif ch != " ":
                return f"header value {value!r}: expecting '%' to close the variable"
        i += 1
    if state != "literal":
        return f"header value {value!r}: un-terminated variable expression; write a literal percent as '%%'"
    return None


def check_header_value(value: Any, path: str, f: Findings) -> bool:
    err = header_value_error(value) if isinstance(value, str) else None
    if err:
        f.error(path, err)
    return err is None


# ---------------------------------------------------------------- regexes and string matches

def regex_error(pattern: Any) -> str | None:
    """Why `pattern` is not an acceptable RE2 regex for Envoy, or None."""
    if not isinstance(pattern, str):
        return f"regex must be a string (got {type(pattern).__name__})"
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}"
    try:
        re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"invalid regex {pattern!r}: {detail}; {RE2_DOC}"
    return None


def check_regex(pattern: Any, path: str, f: Findings) -> bool:
    err = regex_error(pattern)
    if err:
        f.error(path, err)
    return err is None


def check_string_match(sm: Any, path: str, f: Findings, *, allow_empty_prefix: bool = False) -> None:
    """Istio's validateStringMatch: a non-empty prefix, a non-empty valid RE2 regex.

    `allow_empty_prefix=True` is `uri` (Envoy accepts `prefix: ""` for paths).
    An empty `{}` is accepted (it is a presence match for headers).
    """
    if sm is None:
        return
    if getattr(sm, "prefix", None) == "" and not allow_empty_prefix:
        f.error(at(path, "prefix"), "prefix string match should not be empty")
    regex = getattr(sm, "regex", None)
    if regex == "":
        f.error(at(path, "regex"), "regex string match should not be empty")
    elif regex is not None:
        check_regex(regex, at(path, "regex"), f)


__all__ = [n for n in dir() if n.startswith(("check_", "parse_", "is_", "host_")) or n.endswith("_error")] + [
    "key", "with_empty_collections", "format_seconds", "HEADER_NAME", "HEADER_TOKEN", "DNS1123_LABEL", "DNS1123_LABEL_LOWER",
    "DNS1123_SUBDOMAIN", "PROTOCOLS",
    "HTTP_PROTOCOLS", "TLS_PROTOCOLS", "UNIX_PREFIX",
]
