import pytest

from isthmus.citadel.spiffe import SpiffeId, parse_spiffe_id


def test_format_and_parse_round_trip():
    sid = SpiffeId("cluster.local", "default", "bookinfo-productpage")
    assert sid.uri == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert parse_spiffe_id(sid.uri) == sid
    assert str(sid) == sid.uri


@pytest.mark.parametrize("uri, words", [
    ("https://cluster.local/ns/a/sa/b", "must start with spiffe://"),
    ("spiffe://cluster.local/ns/a", "must have the form"),
    ("spiffe://cluster.local/sa/b/ns/a", "must have the form"),
    ("spiffe://cluster.local/ns/a/sa/b/extra", "must have the form"),
    ("spiffe://cluster.local/ns/a/sa/b?x=1", "no query"),
    ("spiffe://Cluster.Local/ns/a/sa/b", "trust domain"),
    ("spiffe://cluster.local/ns/A_B/sa/b", "namespace"),
    ("spiffe://cluster.local/ns/a/sa/", "service account"),
])
def test_parse_rejects_with_the_rule(uri, words):
    with pytest.raises(ValueError, match=words):
        parse_spiffe_id(uri)


def test_service_account_may_hold_dots():
    assert parse_spiffe_id("spiffe://td/ns/ns1/sa/a.b-c").service_account == "a.b-c"
