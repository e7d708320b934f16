"""HcmRuntime's route memo: results remembered by (host, path) only for tables whose
routes match on nothing else, and the same route either way."""
from __future__ import annotations

from isthmus.proxy.config.routes import compile_route_configuration
from isthmus.proxy.runtime.hcm import route_memo
from tests.proxy.config.helpers import route_configuration, vhost


def table(*routes, **extra):
    return compile_route_configuration(route_configuration([vhost("v", ["*"], list(routes))], **extra))


def r(name: str, match: dict) -> dict:
    return {"name": name, "match": match, "route": {"cluster": name}}


def test_host_and_path_only_tables_are_memoized():
    plain = table(r("exact", {"path": "/a"}), r("regex", {"safe_regex": {"regex": "/items/[0-9]+"}}), r("root", {"prefix": "/"}))
    assert route_memo(plain) == {} and route_memo(None) is None


def test_tables_that_read_more_than_host_and_path_are_not():
    for match in ({"prefix": "/", "headers": [{"name": "x-a", "string_match": {"exact": "1"}}]},
                  {"prefix": "/", "query_parameters": [{"name": "v", "present_match": True}]},
                  {"prefix": "/", "grpc": {}},
                  {"prefix": "/", "runtime_fraction": {"default_value": {"numerator": 50, "denominator": "HUNDRED"}}}):
        assert route_memo(table(r("special", match), r("root", {"prefix": "/"}))) is None, match
