"""Host and HostSet: EDS health mapping, state kept across updates, versioning."""
from __future__ import annotations

import pytest

from isthmus.proxy.upstream.endpoints import Endpoint, HostSet, Locality
from isthmus.proxy.upstream.health import (
    HealthFlag, HealthStatus, HostHealth, coarse_health, eds_flags,
)

from .helpers import endpoints


@pytest.mark.parametrize("status, health", [
    (HealthStatus.UNKNOWN, HostHealth.HEALTHY),
    (HealthStatus.HEALTHY, HostHealth.HEALTHY),
    (HealthStatus.UNHEALTHY, HostHealth.UNHEALTHY),
    (HealthStatus.DRAINING, HostHealth.UNHEALTHY),
    (HealthStatus.TIMEOUT, HostHealth.UNHEALTHY),
    (HealthStatus.DEGRADED, HostHealth.DEGRADED),
    (42, HostHealth.HEALTHY),  # an enum value from a newer control plane
])
def test_eds_health_status_mapping(status, health):
    assert coarse_health(eds_flags(status)) is health
    hs = HostSet([Endpoint("10.0.0.1", 80, health_status=status)])
    assert hs.hosts[0].health is health


def test_failure_wins_over_degraded():
    flags = HealthFlag.DEGRADED_EDS_HEALTH | HealthFlag.FAILED_OUTLIER_CHECK
    assert coarse_health(flags) is HostHealth.UNHEALTHY


def test_update_keeps_host_objects_counters_and_ejection():
    hs = HostSet(endpoints(3))
    a, b, c = hs.hosts
    a.request_started()
    hs.set_health_flag(b, HealthFlag.FAILED_OUTLIER_CHECK, True)
    new = [Endpoint(a.address, a.port, weight=5, locality=Locality("eu", "z1")),
           Endpoint(b.address, b.port),
           Endpoint("10.9.9.9", 8080)]
    update = hs.update(new)
    assert hs.hosts[0] is a and hs.hosts[1] is b
    assert a.active_requests == 1 and a.weight == 5 and a.locality.zone == "z1"
    assert b.ejected and b.health is HostHealth.UNHEALTHY
    assert update.removed == (c,)
    assert [h.address for h in update.added] == ["10.9.9.9"]


def test_eds_health_refreshes_but_outlier_flag_survives():
    hs = HostSet([Endpoint("10.0.0.1", 80, health_status=HealthStatus.UNHEALTHY)])
    host = hs.hosts[0]
    hs.set_health_flag(host, HealthFlag.FAILED_OUTLIER_CHECK, True)
    hs.update([Endpoint("10.0.0.1", 80, health_status=HealthStatus.HEALTHY)])
    assert host.health_flags == HealthFlag.FAILED_OUTLIER_CHECK


def test_versions_move_on_health_and_membership_changes():
    hs = HostSet(endpoints(2))
    v, m = hs.version, hs.membership_version
    assert hs.set_health_flag(hs.hosts[0], HealthFlag.FAILED_OUTLIER_CHECK, True)
    assert hs.version > v and hs.membership_version == m
    v = hs.version
    assert not hs.set_health_flag(hs.hosts[0], HealthFlag.FAILED_OUTLIER_CHECK, True)  # no change
    assert hs.version == v
    hs.update(endpoints(3))
    assert hs.membership_version == m + 1
    v = hs.version
    hs.update(endpoints(3))  # the same assignment again: nothing for balancers to rebuild
    assert hs.version == v
    hs.update(endpoints(3, [1, 1, 2]))
    assert hs.version > v


def test_priorities_group_hosts_and_keep_empty_levels():
    hs = HostSet(endpoints(2, priority=0) + endpoints(1, priority=2, base=10)
                 + [Endpoint("10.5.5.5", 1, health_status=HealthStatus.DEGRADED)])
    assert [len(p.hosts) for p in hs.priorities] == [3, 0, 1]
    assert len(hs.priorities[0].healthy) == 2 and len(hs.priorities[0].degraded) == 1


def test_hash_key_order_and_ipv6_address_string():
    h = HostSet([Endpoint("::1", 80, hostname="web-0")]).hosts[0]
    assert h.address_string == "[::1]:80"
    assert h.hash_key() == "[::1]:80" and h.hash_key(use_hostname=True) == "web-0"
    h2 = HostSet([Endpoint("10.0.0.1", 80, hostname="web-1",
                           metadata={"envoy.lb": {"hash_key": "sts-1"}})]).hosts[0]
    assert h2.hash_key(use_hostname=True) == "sts-1"


def test_duplicate_addresses_first_wins_and_invalid_weight_rejected():
    hs = HostSet([Endpoint("10.0.0.1", 80, weight=2), Endpoint("10.0.0.1", 80, weight=3)])
    assert len(hs) == 1 and hs.hosts[0].weight == 2
    with pytest.raises(ValueError, match="weight must be >= 1"):
        Endpoint("10.0.0.1", 80, weight=0)


def test_host_metadata_is_read_only():
    hs = HostSet([Endpoint("10.0.0.1", 80, metadata={"istio": {"workload": "a"}})])
    with pytest.raises(TypeError):
        hs.hosts[0].metadata["x"] = 1  # type: ignore[index]
