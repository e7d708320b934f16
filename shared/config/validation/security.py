"""Istio's webhook (semantic) checks for PeerAuthentication, AuthorizationPolicy and
RequestAuthentication, run after the CRD schema and its CEL rules admitted the object.

Pure: `validate_*(spec, obj, f)` records errors and warnings in `f` with JSON field
paths (`spec.rules[0].to[0].operation.paths[1]`) and never raises, whatever the spec holds.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator
from urllib.parse import urlsplit

from jwcrypto import jwk

from isthmus.shared.config import types as t
from isthmus.shared.config.validation import common
from isthmus.shared.config.validation.report import Findings, at

# ------------------------------------------------------------------ shared helpers


def items(values: Any) -> Iterator[tuple[int, str]]:
    """(index, item) of a list of strings, skipping items of the wrong type (the schema's job)."""
    if isinstance(values, tuple):
        for i, v in enumerate(values):
            if isinstance(v, str):
                yield i, v


def text(value: Any) -> str:
    """A string field's value; "" when unset (or not a string)."""
    return value if isinstance(value, str) else ""


def present(value: Any) -> bool:
    """Istio's `!= nil` for a list or object read from YAML (empty lists count as unset)."""
    return value is not None and value != ()


# Istio's allowed policy targets (pkg/config/validation: allowedTargetRefs), by (group, kind).
_TARGET_KINDS = {
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
}


def _check_target_ref(ref: Any, path: str, f: Findings) -> None:
    if ref is None:
        f.error(path, "must not be null")
        return
    if not isinstance(ref, t.PolicyTargetReference):
        return
    if not text(ref.name):
        f.error(at(path, "name"), "targetRef name must be set")
    if text(ref.namespace):
        f.error(at(path, "namespace"), "cross namespace referencing is not supported; leave namespace empty")
    group, kind = text(ref.group) or "core", text(ref.kind)
    if (group, kind) not in _TARGET_KINDS:
        f.error(path, f"targetRef must be to a Service, a ServiceEntry (networking.istio.io), or a Gateway or "
                      f"GatewayClass (gateway.networking.k8s.io), not {text(ref.group)}/{kind}")


def check_policy_target(spec: Any, f: Findings, path: str = "spec") -> None:
    """Istio's selector/targetRef/targetRefs rules shared by every policy kind."""
    selector = getattr(spec, "selector", None)
    target_ref = getattr(spec, "target_ref", None)
    target_refs = getattr(spec, "target_refs", ())
    if (selector is not None) + (target_ref is not None) + present(target_refs) > 1:
        f.error(path, "only one of selector, targetRef or targetRefs can be set")
    if isinstance(selector, t.WorkloadSelector):
        common.check_workload_selector(selector, at(path, "selector"), f)
    if target_ref is not None:
        _check_target_ref(target_ref, at(path, "targetRef"), f)
    if isinstance(target_refs, tuple):
        for i, ref in enumerate(target_refs):
            _check_target_ref(ref, at(at(path, "targetRefs"), i), f)


def has_selector_labels(spec: Any) -> bool:
    selector = getattr(spec, "selector", None)
    labels = getattr(selector, "match_labels", None)
    return bool(labels) if isinstance(selector, t.WorkloadSelector) else False


# ------------------------------------------------------------------ PeerAuthentication

MTLS_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")


def _check_mtls(mtls: Any, path: str, f: Findings) -> None:
    if mtls is None:
        f.error(path, "must not be null; set `mode`")
        return
    mode = getattr(mtls, "mode", None)
    if mode is not None and mode not in MTLS_MODES:
        f.error(at(path, "mode"), f"unknown mTLS mode {mode!r}; use one of {', '.join(MTLS_MODES)}")


def validate_peer_authentication(spec: Any, obj: Any, f: Findings) -> None:
    """Workload selector, port-level mTLS only for workload-scoped policies, valid modes."""
    if not isinstance(spec, t.PeerAuthenticationSpec):
        return
    if isinstance(spec.selector, t.WorkloadSelector):
        common.check_workload_selector(spec.selector, "spec.selector", f)
    if isinstance(spec.mtls, t.MutualTLS):
        _check_mtls(spec.mtls, "spec.mtls", f)
    levels = spec.port_level_mtls
    if not hasattr(levels, "items") or not levels:
        return
    if not has_selector_labels(spec):
        f.error("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS; "
                                      "add a selector with matchLabels to scope it to workloads")
    for port, mtls in levels.items():
        path = f"spec.portLevelMtls[{port}]"
        if not re.fullmatch(r"[0-9]{1,5}", str(port)) or not 1 <= int(port) <= 65535:
            f.error(path, f"port must be a number between 1 and 65535 (got {port!r})")
        _check_mtls(mtls, path, f)


# ------------------------------------------------------------------ AuthorizationPolicy

_WILDCARD_HELP = "'*' is only allowed alone, as a prefix ('*.example.com') or as a suffix ('/api/*')"
_TEMPLATE_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")  # RFC 3986 pchar (Envoy)
_PORT_TEXT = re.compile(r"[0-9]+")


def wildcard_error(value: str) -> str | None:
    """Istio string matches are exact, `prefix*`, `*suffix` or `*`; a `*` elsewhere is a typo."""
    core = value[1:] if value.startswith("*") else value[:-1] if value.endswith("*") else value
    if value != "*" and "*" in core:
        return f"invalid match {value!r}: {_WILDCARD_HELP}"
    return None


def path_error(value: str) -> str | None:
    """Operation paths: a string match, or an Envoy URI template with `{*}` / `{**}` segments."""
    is_template = "{*}" in value or "{**}" in value
    found_any = False
    for segment in value.strip("/").split("/"):
        if segment in ("{*}", "{**}"):
            if found_any:
                return f"invalid path template {value!r}: {{**}} must be the last operator"
            found_any = segment == "{**}"
            continue
        if "{" in segment or "}" in segment:
            return (f"invalid path {value!r}: '{{' and '}}' are only allowed as whole-segment "
                    f"templates {{*}} (one segment) or {{**}} (the rest of the path)")
        if is_template and not _TEMPLATE_LITERAL.match(segment):
            return (f"invalid path template {value!r}: segment {segment!r} is not a valid literal "
                    f"(no '*', no empty segment; use {{*}} for a whole segment)")
    return None if is_template else wildcard_error(value)


def port_error(value: str) -> str | None:
    if not _PORT_TEXT.fullmatch(value) or int(value) > 65535:
        return f"bad port {value!r}: must be a number between 0 and 65535"
    return None


def ip_error(value: str) -> str | None:
    """Istio's ValidateIPs: an address, or a CIDR with a decimal prefix length (no netmask form)."""
    _, sep, bits = value.partition("/")
    if sep and not re.fullmatch(r"0|[1-9][0-9]{0,2}", bits):
        return f"bad CIDR range {value!r}: the prefix length must be a decimal number such as /24"
    f = Findings()
    if common.check_ip_or_cidr(value, "", f):
        return None
    return f.errors[0].message if f.errors else f"{value!r} is not a valid IP address or CIDR block"


def service_account_error(value: str) -> str | None:
    if "*" in value:
        return f"wildcard not allowed in service account {value!r}"
    if len(value) > 320:
        return "service account cannot exceed 320 characters"
    ns, sep, sa = value.partition("/")
    if sep and ("/" in sa or not ns or not sa):
        return f"expected format 'serviceAccount' or 'namespace/serviceAccount' (got {value!r})"
    return None


def _check_values(values: Any, path: str, f: Findings, rule: Any = wildcard_error) -> None:
    """Every value non-empty, then the field's own rule (wildcard form, IP, port, ...)."""
    for i, value in items(values):
        if value == "":
            f.error(at(path, i), "empty value not allowed")
        else:
            err = rule(value) if rule else None
            if err:
                f.error(at(path, i), err)


_SOURCE_RULES = {
    "ipBlocks": ip_error, "notIpBlocks": ip_error,
    "remoteIpBlocks": ip_error, "notRemoteIpBlocks": ip_error,
    "serviceAccounts": service_account_error, "notServiceAccounts": service_account_error,
}
# Source fields that make a rule match TCP traffic too (everything but request principals).
_SOURCE_TCP = {"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks",
               "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts"}
_CUSTOM_UNSUPPORTED_SOURCE = ("namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
                              "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals")
_OPERATION_RULES = {"ports": port_error, "notPorts": port_error, "paths": path_error, "notPaths": path_error}


def _check_source(src: t.Source, path: str, custom: bool, f: Findings) -> bool:
    """Checks one `from.source`; True when it uses attributes that also apply to TCP."""
    fields = {json_name: getattr(src, attr) for json_name, attr, _, _ in t.Source._FIELDS}
    set_fields = {name for name, value in fields.items() if present(value)}
    if not set_fields:
        f.error(path, "`from.source` must not be empty: set principals, namespaces, ipBlocks, ... or drop it")
    if set_fields & {"serviceAccounts", "notServiceAccounts"} and set_fields & {
            "principals", "notPrincipals", "namespaces", "notNamespaces"}:
        f.error(path, "cannot set serviceAccounts with namespaces or principals")
    for name, values in fields.items():
        _check_values(values, at(path, name), f, _SOURCE_RULES.get(name, wildcard_error))
    for name in ("serviceAccounts", "notServiceAccounts"):
        if isinstance(fields[name], tuple) and len(fields[name]) > 16:
            f.error(at(path, name), "may not have more than 16 values")
    if custom:
        for name in _CUSTOM_UNSUPPORTED_SOURCE:
            if name in set_fields:
                f.error(at(path, name), f"{name} is not supported with the CUSTOM action")
    return bool(set_fields & _SOURCE_TCP)


def _check_operation(op: t.Operation, path: str, f: Findings) -> bool:
    """Checks one `to.operation`; True when it names ports (so it also applies to TCP)."""
    fields = {json_name: getattr(op, attr) for json_name, attr, _, _ in t.Operation._FIELDS}
    if not any(present(v) for v in fields.values()):
        f.error(path, "`to.operation` must not be empty: set hosts, ports, methods or paths, or drop it")
    for name, values in fields.items():
        _check_values(values, at(path, name), f, _OPERATION_RULES.get(name, wildcard_error))
    return present(op.ports) or present(op.not_ports)


def map_key_error(key: str) -> str | None:
    """Istio's validateMapKey: `name[key]` with a non-empty key."""
    open_at = key.find("[")
    if key.endswith("]") and 0 < open_at < len(key) - 2:
        return None
    return f"bad key {key!r}: should have the form name[key], e.g. request.headers[User-Agent]"


# when-condition attributes: (exact key or prefix, is_prefix, value rule or None, key message or None)
_ATTRIBUTES: tuple[tuple[str, bool, Any, Any], ...] = (
    ("request.headers", True, wildcard_error, map_key_error),
    ("request.experimental.inline.headers", True, wildcard_error, map_key_error),
    ("source.ip", False, ip_error, None),
    ("remote.ip", False, ip_error, None),
    ("source.namespace", False, wildcard_error, None),
    ("source.serviceAccount", False, service_account_error, None),
    ("source.principal", False, wildcard_error, None),
    ("request.auth.principal", False, wildcard_error, None),
    ("request.auth.audiences", False, wildcard_error, None),
    ("request.auth.presenter", False, wildcard_error, None),
    ("request.auth.claims", True, wildcard_error, map_key_error),
    ("destination.ip", False, ip_error, None),
    ("destination.port", False, port_error, None),
    ("connection.sni", False, wildcard_error, None),
    ("experimental.envoy.filters.", True, wildcard_error, map_key_error),
)
_RETIRED_ATTRIBUTES = {
    "destination.namespace": "attribute destination.namespace is replaced by the policy's metadata.namespace",
    "destination.name": "deprecated attribute destination.name: only supported in v1alpha1",
    "destination.user": "deprecated attribute destination.user: only supported in v1alpha1",
}
_KNOWN_KEYS = ("request.headers[...], source.ip, remote.ip, source.namespace, source.principal, "
               "source.serviceAccount, request.auth.principal, request.auth.audiences, request.auth.presenter, "
               "request.auth.claims[...], destination.ip, destination.port, connection.sni, "
               "experimental.envoy.filters.*")


def _attribute(key: str) -> tuple[Any, str | None]:
    """(value rule, key error) for a when-condition key."""
    for name, is_prefix, rule, key_rule in _ATTRIBUTES:
        if key == name or (is_prefix and key.startswith(name)):
            return rule, key_rule(key) if key_rule else None
    if key.startswith("destination.labels"):
        return None, f"attribute {key} is replaced by the workload selector (spec.selector)"
    if key in _RETIRED_ATTRIBUTES:
        return None, _RETIRED_ATTRIBUTES[key]
    return None, f"unknown attribute {key!r}; supported: {_KNOWN_KEYS}"


def _check_condition(cond: t.Condition, path: str, custom: bool, f: Findings) -> None:
    key = text(cond.key)
    if not key:
        f.error(at(path, "key"), "`key` must not be empty")
        return
    rule, key_error = _attribute(key)
    if key_error:
        f.error(at(path, "key"), key_error)
    if custom and (key in ("source.namespace", "source.serviceAccount", "source.principal")
                   or key.startswith("request.auth.")):
        f.error(at(path, "key"), f"{key} is not supported with the CUSTOM action")
    if not present(cond.values) and not present(cond.not_values):
        f.error(path, f"at least one of `values` or `notValues` must be set for key {key}")
        return
    if not key_error:
        _check_values(cond.values, at(path, "values"), f, rule)
        _check_values(cond.not_values, at(path, "notValues"), f, rule)


def _check_rule(rule: t.Rule, path: str, action: str, f: Findings) -> None:
    custom = action == "CUSTOM"
    from_exists = tcp_in_from = to_exists = tcp_in_to = False
    for j, item in enumerate(rule.from_ if isinstance(rule.from_, tuple) else ()):
        p = at(at(path, "from"), j)
        if not isinstance(item, t.RuleFrom):
            if item is None:
                f.error(p, "`from` must not be null")
            continue
        if not isinstance(item.source, t.Source):
            if item.source is None:
                f.error(at(p, "source"), "`from.source` must be set")
            continue
        from_exists = True
        tcp_in_from |= _check_source(item.source, at(p, "source"), custom, f)
    for j, item in enumerate(rule.to if isinstance(rule.to, tuple) else ()):
        p = at(at(path, "to"), j)
        if not isinstance(item, t.RuleTo):
            if item is None:
                f.error(p, "`to` must not be null")
            continue
        if not isinstance(item.operation, t.Operation):
            if item.operation is None:
                f.error(at(p, "operation"), "`to.operation` must be set")
            continue
        to_exists = True
        tcp_in_to |= _check_operation(item.operation, at(p, "operation"), f)
    for j, cond in enumerate(rule.when if isinstance(rule.when, tuple) else ()):
        p = at(at(path, "when"), j)
        if isinstance(cond, t.Condition):
            _check_condition(cond, p, custom, f)
        elif cond is None:
            f.error(p, "`when` must not be null")
    if action == "DENY" and ((from_exists and not to_exists and not tcp_in_from) or (to_exists and not tcp_in_to)):
        f.warn(path, "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to "
                     "the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")


def validate_authorization_policy(spec: Any, obj: Any, f: Findings) -> None:
    """Action/provider/rules semantics, then every source, operation and condition."""
    if not isinstance(spec, t.AuthorizationPolicySpec):
        return
    check_policy_target(spec, f)
    action = text(spec.action) or "ALLOW"
    rules = spec.rules if isinstance(spec.rules, tuple) else ()
    provider = spec.provider
    if action == "CUSTOM":
        if not rules:
            f.error("spec.rules", "CUSTOM action without `rules` is meaningless as it will never be triggered; "
                                  "add an empty rule `{}` if you want it to be triggered for every request")
        elif not isinstance(provider, t.ExtensionProvider) or not text(provider.name):
            f.error("spec.provider.name", "`provider.name` must not be empty with the CUSTOM action; "
                                          "name an extension provider from the mesh config")
    elif provider is not None:
        f.error("spec.provider", f"`provider` must not be set with a non-CUSTOM action (found {action})")
    if action == "DENY" and not rules:
        f.error("spec.rules", "DENY action without `rules` is meaningless as it will never be triggered; "
                              "add an empty rule `{}` if you want it to be triggered for every request")
    for i, rule in enumerate(rules):
        if isinstance(rule, t.Rule):
            _check_rule(rule, at("spec.rules", i), action, f)
        elif rule is None:
            f.error(at("spec.rules", i), "`rule` must not be null")


# ------------------------------------------------------------------ RequestAuthentication

# RFC 7230 token: what Envoy accepts as a header name.
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_token_header(name: Any, path: str, f: Findings) -> None:
    if not text(name):
        f.error(path, "header name must be non-empty")
    elif not _HEADER_TOKEN.match(name):
        f.error(path, f"header name {name!r} is not a valid HTTP header name")


def jwks_uri_error(uri: str) -> str | None:
    """Istio's ParseJwksURI: http(s) scheme, a host, and a numeric port if any."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"invalid jwksUri {uri!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"jwksUri scheme {parts.scheme!r} is not supported; use http:// or https://"
    if not parts.hostname:
        return f"invalid jwksUri {uri!r}: a host is required"
    return None


def jwks_error(jwks: str) -> str | None:
    """A JSON Web Key Set (or a single JWK), as Istio's jwk.Parse accepts."""
    try:
        doc = json.loads(jwks)
    except (ValueError, RecursionError) as exc:
        return f"jwks parse error: not JSON ({exc})"
    if not isinstance(doc, dict):
        return "jwks parse error: must be a JSON object: a key set {\"keys\": [...]} or one key"
    keys = doc["keys"] if "keys" in doc else [doc]
    if not isinstance(keys, list):
        return "jwks parse error: `keys` must be a list of JSON Web Keys"
    for i, key in enumerate(keys):
        try:
            if not isinstance(key, dict):
                raise ValueError("must be a JSON object")
            jwk.JWK(**key)
        except Exception as exc:  # noqa: BLE001 - jwcrypto raises many types on bad input
            where = f"keys[{i}]" if "keys" in doc else "key"
            return f"jwks parse error: {where}: {str(exc) or type(exc).__name__}"
    return None


def _check_jwt_rule(rule: t.JWTRule, path: str, f: Findings) -> None:
    for j, audience in items(rule.audiences):
        if not audience:
            f.error(at(at(path, "audiences"), j), "audience must be a non-empty string")
    uris = [("jwksUri", text(rule.jwks_uri)), ("jwks_uri", text(rule.jwks_uri_alias))]
    if not text(rule.issuer) and not any(uri for _, uri in uris):
        f.error(at(path, "issuer"), "issuer is required (it may only be omitted when jwksUri is set)")
    for name, uri in uris:
        err = jwks_uri_error(uri) if uri else None
        if err:
            f.error(at(path, name), err)
    if sum(1 for _, uri in uris if uri) + bool(text(rule.jwks)) > 1:
        f.error(path, "only one of jwks or jwksUri can be set")
    if text(rule.jwks):
        err = jwks_error(rule.jwks)
        if err:
            f.error(at(path, "jwks"), err)
    for j, header in enumerate(rule.from_headers if isinstance(rule.from_headers, tuple) else ()):
        if isinstance(header, t.JWTHeader):
            _check_token_header(header.name, at(at(at(path, "fromHeaders"), j), "name"), f)
        elif header is None:
            f.error(at(at(path, "fromHeaders"), j), "location header must not be null")
    _check_values(rule.from_params, at(path, "fromParams"), f, None)
    _check_values(rule.from_cookies, at(path, "fromCookies"), f, None)
    if rule.output_payload_to_header is not None:
        _check_token_header(rule.output_payload_to_header, at(path, "outputPayloadToHeader"), f)
    for j, pair in enumerate(rule.output_claim_to_headers if isinstance(rule.output_claim_to_headers, tuple) else ()):
        p = at(at(path, "outputClaimToHeaders"), j)
        if not isinstance(pair, t.ClaimToHeader):
            if pair is None:
                f.error(p, "outputClaimToHeaders must not be null")
            continue
        if not text(pair.claim):
            f.error(at(p, "claim"), "claim must be a non-empty string")
        if not text(pair.header):
            f.error(at(p, "header"), "header must be a non-empty string")
        else:
            common.check_header_name(pair.header, at(p, "header"), f)
    if isinstance(rule.timeout, str):
        common.check_duration(rule.timeout, at(path, "timeout"), f)


def validate_request_authentication(spec: Any, obj: Any, f: Findings) -> None:
    """Policy target, then each JWT rule: issuer, JWKS source, token locations, outputs, timeout."""
    if not isinstance(spec, t.RequestAuthenticationSpec):
        return
    check_policy_target(spec, f)
    for i, rule in enumerate(spec.jwt_rules if isinstance(spec.jwt_rules, tuple) else ()):
        if isinstance(rule, t.JWTRule):
            _check_jwt_rule(rule, at("spec.jwtRules", i), f)
        elif rule is None:
            f.error(at("spec.jwtRules", i), "jwt rule must not be null")
