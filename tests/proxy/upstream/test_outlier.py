"""Outlier detection: consecutive errors, ejection time, max %, sweep, success rate."""
from __future__ import annotations

import pytest

from isthmus.proxy.upstream.lb import RoundRobin
from isthmus.proxy.upstream.outlier import EjectionType, OutlierConfig, OutlierDetector, Result

from .helpers import counts, host_set, rng


def detector(n=10, **config) -> OutlierDetector:
    return OutlierDetector(OutlierConfig(**config), host_set(n), rng=rng())


def fail(d, host, times, result=503, now=0.0):
    events = []
    for _ in range(times):
        events += d.on_result(host, result, now)
    return events


def test_consecutive_5xx_ejects_on_the_fifth():
    d = detector()
    h = d.host_set.hosts[0]
    assert fail(d, h, 4, 500) == []
    (event,) = fail(d, h, 1, 500)
    assert event.ejected and event.kind is EjectionType.CONSECUTIVE_5XX and event.duration == 30.0
    assert h.ejected and d.ejections_active == 1
    assert d.stats["ejections_enforced_consecutive_5xx"] == 1


def test_success_resets_the_count():
    d = detector()
    h = d.host_set.hosts[0]
    fail(d, h, 4, 500)
    d.on_result(h, 200, 0)
    assert fail(d, h, 4, 500) == [] and not h.ejected


def test_ejected_host_leaves_the_load_balancer_until_its_time_passes():
    d = detector()
    lb = RoundRobin(d.host_set, rng=rng())
    h = d.host_set.hosts[0]
    fail(d, h, 5)
    assert h not in counts(lb, 100)
    assert d.tick(10) == [] and d.tick(20) == []
    (back,) = d.tick(30)
    assert not back.ejected and back.host is h
    assert h in counts(lb, 100)


def test_ejection_time_grows_with_count_and_is_capped():
    d = detector(base_ejection_time=30, max_ejection_time=90, interval=10)
    h = d.host_set.hosts[0]
    now, durations = 0.0, []
    for _ in range(5):
        (e,) = fail(d, h, 5, now=now)
        durations.append(e.duration)
        now += e.duration
        assert d.tick(now - 1) == []
        assert [x.ejected for x in d.tick(now)] == [False]
    assert durations == [30, 60, 90, 90, 90]


def test_multiplier_decays_while_host_stays_healthy():
    d = detector(base_ejection_time=30, interval=10)
    h = d.host_set.hosts[0]
    fail(d, h, 5, now=0)
    d.tick(30)
    fail(d, h, 5, now=30)
    d.tick(90)  # second ejection lasted 60 s; multiplier is 2
    for t in (100, 110):  # two healthy intervals: 2 → 0
        d.tick(t)
    (e,) = fail(d, h, 5, now=115)
    assert e.duration == 30
    assert e.num_ejections == 3


def test_max_ejection_percent_is_honoured():
    d = detector(n=10, max_ejection_percent=20)
    hosts = d.host_set.hosts
    fail(d, hosts[0], 5, 500)
    fail(d, hosts[1], 5, 500)
    assert fail(d, hosts[2], 5, 500) == []  # would make 30%
    assert d.ejections_active == 2 and d.stats["ejections_overflow"] == 1
    # a later ejection counts again once a slot frees up
    d.tick(30)
    assert len(fail(d, hosts[2], 5)) == 1


def test_small_cluster_ejects_nothing_at_ten_percent_unless_always_eject_one():
    d = detector(n=5)  # 1 of 5 = 20% > 10%
    assert fail(d, d.host_set.hosts[0], 5) == []
    d = detector(n=5, always_eject_one_host=True)
    assert len(fail(d, d.host_set.hosts[0], 5)) == 1
    assert fail(d, d.host_set.hosts[1], 5) == []


def test_gateway_failures_need_enforcement_which_envoy_defaults_to_zero():
    d = detector()
    h = d.host_set.hosts[0]
    fail(d, h, 4, 502)
    assert not h.ejected and d.stats["ejections_detected_consecutive_gateway_failure"] == 0
    d2 = detector(consecutive_5xx=1000, enforcing_consecutive_gateway_failure=100)
    h2 = d2.host_set.hosts[0]
    fail(d2, h2, 4, 504)
    (e,) = fail(d2, h2, 1, Result.LOCAL_ORIGIN_CONNECT_FAILED)  # connect failure counts as 503
    assert e.kind is EjectionType.CONSECUTIVE_GATEWAY_FAILURE


def test_500_breaks_a_gateway_failure_streak():
    d = detector(consecutive_5xx=1000, enforcing_consecutive_gateway_failure=100)
    h = d.host_set.hosts[0]
    fail(d, h, 4, 503)
    d.on_result(h, 500, 0)
    assert fail(d, h, 4, 503) == []


def test_local_origin_errors_count_as_5xx_unless_split():
    d = detector()
    h = d.host_set.hosts[0]
    fail(d, h, 3, Result.LOCAL_ORIGIN_TIMEOUT)
    assert len(fail(d, h, 2, Result.LOCAL_ORIGIN_CONNECT_FAILED)) == 1
    d.on_result(d.host_set.hosts[1], Result.LOCAL_ORIGIN_CONNECT_SUCCESS, 0)  # not counted either way


def test_split_mode_tracks_local_origin_separately():
    d = detector(split_external_local_origin_errors=True, consecutive_local_origin_failure=3)
    a, b = d.host_set.hosts[:2]
    assert fail(d, a, 5, Result.LOCAL_ORIGIN_TIMEOUT)[0].kind is EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE
    fail(d, b, 2, Result.LOCAL_ORIGIN_CONNECT_FAILED)
    d.on_result(b, Result.LOCAL_ORIGIN_CONNECT_SUCCESS, 0)  # resets the local streak
    fail(d, b, 4, 500)  # external errors do not feed the local counter
    assert fail(d, b, 2, Result.LOCAL_ORIGIN_CONNECT_FAILED) == []


def test_enforcing_percentage_is_a_probability():
    d = detector(n=200, max_ejection_percent=100, enforcing_consecutive_5xx=30)
    ejected = sum(len(fail(d, h, 5)) for h in d.host_set.hosts)
    assert d.stats["ejections_detected_consecutive_5xx"] == 200
    assert 40 <= ejected <= 80


def test_success_rate_ejects_the_statistical_outlier():
    d = detector(n=6, max_ejection_percent=50)
    hosts = d.host_set.hosts
    for i, h in enumerate(hosts):
        bad = 60 if i == 0 else 1  # 40% success vs 99%
        for k in range(100):
            d.on_result(h, 500 if k < bad and k % 5 != 4 else 200, 0)
    # the first interval only closes the bucket; decisions use completed intervals
    events = d.tick(10)
    assert [(e.host, e.kind) for e in events] == [(hosts[0], EjectionType.SUCCESS_RATE)]
    mean, threshold = d.success_rate["external"]
    assert 80 < mean < 95 and threshold > 40


def test_success_rate_needs_volume_and_enough_hosts():
    d = detector(n=6, max_ejection_percent=50)
    for k in range(99):  # one short of success_rate_request_volume
        d.on_result(d.host_set.hosts[0], 500 if k % 2 else 200, 0)
    assert d.tick(10) == [] and d.success_rate["external"] is None


def test_failure_percentage_when_enforced():
    d = detector(n=5, max_ejection_percent=100, enforcing_failure_percentage=100, consecutive_5xx=1000)
    for i, h in enumerate(d.host_set.hosts):
        for k in range(50):
            d.on_result(h, 503 if (i == 1 and k % 10) else 200, 0)  # host 1: 90% failures
    (e,) = d.tick(10)
    assert e.kind is EjectionType.FAILURE_PERCENTAGE and e.host is d.host_set.hosts[1]


def test_removed_host_forgotten_and_kept_host_keeps_state():
    d = detector(n=10)
    hs = d.host_set
    kept, gone = hs.hosts[0], hs.hosts[1]
    fail(d, kept, 5)
    fail(d, gone, 3)
    from isthmus.proxy.upstream.endpoints import Endpoint
    hs.update([Endpoint(h.address, h.port) for h in hs.hosts if h is not gone])
    assert kept.ejected and d.ejections_active == 1
    assert d.on_result(gone, 500, 0) == []
    assert d.ejection_time_remaining(kept, 10) == 20


def test_config_validation_and_defaults():
    assert OutlierConfig().max_ejection_time == 300
    assert OutlierConfig(base_ejection_time=600).max_ejection_time == 600
    with pytest.raises(ValueError, match="max_ejection_time cannot be smaller"):
        OutlierConfig(base_ejection_time=60, max_ejection_time=30)


def test_jitter_is_added_from_the_injected_rng():
    d = detector(max_ejection_time_jitter=5)
    (e,) = fail(d, d.host_set.hosts[0], 5)
    assert 30 <= e.duration <= 35
