"""Compiled matchers and header mutations: RE2 regexes (compiled once per pattern),
Envoy StringMatcher / HeaderMatcher as `matches` callables, and headers to add/remove
with values pre-parsed into substitution-format Templates.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from google.protobuf.message import Message

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import range_pb2

from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.formatter import Template, parse_format

STRING_MATCHER = Fields(string_pb2.StringMatcher, {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"})
REGEX_MATCHER = Fields(regex_pb2.RegexMatcher, {"regex"}, {"google_re2": "deprecated, no effect (RE2 is the only engine)"})
HEADER_MATCHER = Fields(rc.HeaderMatcher, {
    "name", "exact_match", "safe_regex_match", "range_match", "present_match", "prefix_match", "suffix_match",
    "contains_match", "string_match", "invert_match", "treat_missing_header_as_empty",
})
HEADER_VALUE_OPTION = Fields(base_pb2.HeaderValueOption, {"header", "append", "append_action", "keep_empty_value"})
HEADER_VALUE = Fields(base_pb2.HeaderValue, {"key", "value", "raw_value"})


@functools.lru_cache(maxsize=4096)
def _re2(pattern: str):
    import re2  # loaded with the first regex: a sidecar whose config has none saves ~1.6 MiB

    return re2.compile(pattern)


def compile_regex(pattern: str, where: Where):
    import re2

    try:
        return _re2(pattern)
    except re2.error as e:
        raise where.invalid(f"invalid RE2 regex {pattern!r}: {e}") from None


def regex_matcher(msg: regex_pb2.RegexMatcher, where: Where):
    REGEX_MATCHER.check(msg, where)
    return compile_regex(msg.regex, where.at("regex"))


@dataclass(frozen=True, slots=True)
class StringMatch:
    kind: str  # exact | prefix | suffix | contains | regex
    value: str
    ignore_case: bool = False
    matches: Callable[[str], bool] = field(default=bool, compare=False, repr=False)


def make_string_match(kind: str, value: str, ignore_case: bool = False, where: Where | None = None) -> StringMatch:
    if kind == "regex":
        rx = compile_regex(value, where or Where("", "", ""))
        return StringMatch(kind, value, False, lambda v: rx.fullmatch(v) is not None)
    want = value.lower() if ignore_case else value
    op = {"exact": str.__eq__, "prefix": str.startswith, "suffix": str.endswith,
          "contains": lambda v, w: w in v}[kind]
    if ignore_case:
        return StringMatch(kind, value, True, lambda v: op(v.lower(), want))
    return StringMatch(kind, value, False, lambda v: op(v, want))


def string_matcher(msg: string_pb2.StringMatcher, where: Where) -> StringMatch:
    STRING_MATCHER.check(msg, where)
    which = msg.WhichOneof("match_pattern")
    if which is None:
        raise where.invalid("a StringMatcher needs exact, prefix, suffix, contains or safe_regex")
    if which == "safe_regex":
        REGEX_MATCHER.check(msg.safe_regex, where.at("safe_regex"))
        return make_string_match("regex", msg.safe_regex.regex, where=where.at("safe_regex").at("regex"))
    return make_string_match(which, getattr(msg, which), msg.ignore_case)


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Envoy's HeaderMatcher; `matches(value_or_None)` applies presence, inversion and
    treat_missing_header_as_empty exactly as Envoy's HeaderUtility does."""

    name: str
    kind: str  # exact | prefix | suffix | contains | regex | range | present | string
    invert: bool
    treat_missing_as_empty: bool
    matches: Callable[[str | None], bool] = field(compare=False, repr=False)


def _range(r: range_pb2.Int64Range) -> Callable[[str], bool]:
    start, end = r.start, r.end

    def check(v: str) -> bool:
        try:
            n = int(v)
        except ValueError:
            return False
        return start <= n < end
    return check


def header_matcher(msg: rc.HeaderMatcher, where: Where) -> HeaderMatch:
    HEADER_MATCHER.check(msg, where)
    which = msg.WhichOneof("header_match_specifier")
    present = True
    if which == "string_match":
        sm = string_matcher(msg.string_match, where.at("string_match"))
        kind, check = "string", sm.matches
    elif which == "exact_match":
        want = msg.exact_match
        kind, check = "exact", (lambda v: True) if not want else (lambda v: v == want)
    elif which == "safe_regex_match":
        rx = regex_matcher(msg.safe_regex_match, where.at("safe_regex_match"))
        kind, check = "regex", lambda v: rx.fullmatch(v) is not None
    elif which == "range_match":
        kind, check = "range", _range(msg.range_match)
    elif which in ("prefix_match", "suffix_match", "contains_match"):
        kind = which[: -len("_match")]
        check = make_string_match(kind, getattr(msg, which)).matches
    else:  # present_match, or nothing set (= present)
        present = msg.present_match if which == "present_match" else True
        kind, check = "present", lambda v: present
    invert, missing_empty = msg.invert_match, msg.treat_missing_header_as_empty
    is_present_kind = kind == "present"

    def matches(value: str | None) -> bool:
        if value is None:
            if not missing_empty:
                return is_present_kind and (present if invert else not present)
            value = ""
        return check(value) != invert
    return HeaderMatch(msg.name.lower(), kind, invert, missing_empty, matches)


# ---------------------------------------------------------------- header mutations

APPEND_ACTIONS = {
    base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD: "append_if_exists_or_add",
    base_pb2.HeaderValueOption.ADD_IF_ABSENT: "add_if_absent",
    base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD: "overwrite_if_exists_or_add",
    base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS: "overwrite_if_exists",
}


@dataclass(frozen=True, slots=True)
class HeaderValueConfig:
    """One header to add: `value` is pre-parsed (%COMMAND% operators, e.g.
    %DOWNSTREAM_REMOTE_ADDRESS%); `literal` is set when it has no operators."""

    key: str
    value: Template
    append_action: str
    keep_empty_value: bool = False
    literal: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderMutations:
    add: tuple[HeaderValueConfig, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


NO_MUTATIONS = HeaderMutations()


def _modifiable(name: str, where: Where) -> str:
    key = name.lower()
    if not key or key.startswith(":") or key == "host":
        raise where.invalid(f"header {name!r}: ':'-prefixed and host headers may not be modified")
    return key


def header_value_option(msg: base_pb2.HeaderValueOption, where: Where) -> HeaderValueConfig:
    HEADER_VALUE_OPTION.check(msg, where)
    HEADER_VALUE.check(msg.header, where.at("header"))
    key = _modifiable(msg.header.key, where.at("header").at("key"))
    raw = msg.header.raw_value.decode("latin-1") if msg.header.raw_value else msg.header.value
    if msg.HasField("append"):
        if msg.append_action != base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD:
            raise where.at("append").invalid("append and append_action are mutually exclusive")
        action = "append_if_exists_or_add" if msg.append.value else "overwrite_if_exists_or_add"
    else:
        action = APPEND_ACTIONS.get(msg.append_action)
        if action is None:
            raise where.at("append_action").unsupported(f"unknown append_action {msg.append_action}")
    template = parse_format(raw, where.at("header").at("value"))
    literal = template[0] if len(template) == 1 and isinstance(template[0], str) else ("" if not template else None)
    return HeaderValueConfig(key, template, action, msg.keep_empty_value, literal)


def header_mutations(add, remove, where_add: Where, where_remove: Where) -> HeaderMutations:
    if not add and not remove:
        return NO_MUTATIONS
    return HeaderMutations(
        tuple(header_value_option(h, where_add.idx(i)) for i, h in enumerate(add)),
        tuple(_modifiable(n, where_remove.idx(i)) for i, n in enumerate(remove)),
    )


def mutations_of(msg: Message, where: Where, direction: str) -> HeaderMutations:
    """`request`/`response` headers_to_add + headers_to_remove of a route/vhost/config message."""
    add, remove = f"{direction}_headers_to_add", f"{direction}_headers_to_remove"
    return header_mutations(getattr(msg, add), getattr(msg, remove), where.at(add), where.at(remove))
