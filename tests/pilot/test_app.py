"""How pilot turns config changes into pushes (pure part of the shell)."""
from __future__ import annotations

from isthmus.pilot.app import classify_change
from isthmus.shared.config.resource import ResourceKey
from tests.pilot.fixtures import BOOKINFO_SERVICES, resources_from_yaml


def _objects():
    return {r.key: r for r in resources_from_yaml(BOOKINFO_SERVICES)}


def test_workload_entry_changes_are_eds_only_for_the_selecting_hosts():
    objects = _objects()
    key = ResourceKey("WorkloadEntry", "default", "reviews-v2")
    req = classify_change(objects, frozenset({key}), {})
    assert not req.full and req.eds_hosts == {"reviews.default.svc.cluster.local"}
    # a deleted entry still names the hosts its last labels selected
    del objects[key]
    req = classify_change(objects, frozenset({key}), {key: {"app": "reviews", "version": "v2"}})
    assert not req.full and req.eds_hosts == {"reviews.default.svc.cluster.local"}


def test_any_other_change_is_a_full_push():
    objects = _objects()
    changed = frozenset({ResourceKey("ServiceEntry", "default", "reviews"), ResourceKey("WorkloadEntry", "default", "reviews-v1")})
    assert classify_change(objects, changed, {}).full
    assert classify_change(objects, frozenset(), {}).full
