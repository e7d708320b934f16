"""`open_store(url)`: which backend a URL names, and clear refusals."""
from __future__ import annotations

from pathlib import Path

import pytest

from isthmus.shared.store import open_store, parse_etcd_endpoints
from isthmus.shared.store.etcd import EtcdStore
from isthmus.shared.store.memory import MemoryStore
from isthmus.shared.store.sqlite import SqliteStore


async def test_memory_url() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.close()


@pytest.mark.parametrize("form", ["url", "plain"])
async def test_sqlite_url_and_plain_path(tmp_path: Path, form: str) -> None:
    path = tmp_path / "x.db"
    store = open_store(f"sqlite://{path}" if form == "url" else str(path))
    assert isinstance(store, SqliteStore) and store.path == str(path)
    assert await store.revision() == 0
    await store.close()
    assert path.exists()


async def test_etcd_url_with_endpoints_and_options() -> None:
    store = open_store("etcd://10.0.0.1:2379,etcd-b,[::1]:2380/?prefix=/mesh/&timeout=2&max_txn_ops=512")
    assert isinstance(store, EtcdStore)
    assert store.prefix == "/mesh" and store.timeout == 2.0 and store.max_txn_ops == 512
    assert store.address == "10.0.0.1:2379"
    assert open_store("etcd://h:1").prefix == "/isthmus"
    await store.close()


def test_etcd_endpoints_parse() -> None:
    assert parse_etcd_endpoints("a:1, b ,[::1]:3") == [("a", 1), ("b", 2379), ("::1", 3)]
    with pytest.raises(ValueError, match="bad etcd endpoint 'a:x'"):
        parse_etcd_endpoints("a:x")


@pytest.mark.parametrize("url", ["", "sqlite://", "etcd://", "redis://h:1", "etcd://h:1?prefx=/a"])
def test_bad_urls_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(ValueError, match="store URL|parameter"):
        open_store(url)
