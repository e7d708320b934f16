"""RoundRobin, LeastRequest, Random; priority/degraded load, panic, retry exclusion."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.proxy.upstream.endpoints import Endpoint, HostSet
from isthmus.proxy.upstream.health import HealthFlag, HealthStatus
from isthmus.proxy.upstream.lb import (
    ChooseContext, LeastRequest, Random, RoundRobin, edf_sequence, priority_load,
)

from .helpers import counts, eject, endpoints, host_set, rng

ALL = (RoundRobin, LeastRequest, Random)


# -- round robin ---------------------------------------------------------------------------
def test_round_robin_unweighted_visits_each_host_once_per_cycle():
    hs = host_set(5)
    lb = RoundRobin(hs, rng=rng())
    for _ in range(3):
        assert set(lb.choose() for _ in range(5)) == set(hs.hosts)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8), st.integers(0, 1000))
def test_round_robin_weighted_is_exact_per_period(weights, seed):
    hs = host_set(len(weights), weights)
    lb = RoundRobin(hs, rng=rng(seed))
    period = sum(weights)  # weights not reduced here: a multiple of the reduced period
    c = counts(lb, period * 3)
    assert [c[h] for h in hs.hosts] == [3 * w for w in weights]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=6))
def test_round_robin_schedule_is_smooth(weights):
    # After any k picks each host is close to its fair share k·w/W — never "all of A,
    # then all of B" as naive weighted round robin does (that drifts by up to w).
    total, n = sum(weights), len(weights)
    seen = [0] * n
    for k, i in enumerate(edf_sequence(weights), start=1):
        seen[i] += 1
        for j, w in enumerate(weights):
            assert abs(seen[j] - k * w / total) < 0.5 + 0.5 * n


@given(st.integers(1, 50), st.integers(1, 50))
def test_round_robin_two_hosts_within_one_of_share(a, b):
    seen = [0, 0]
    for k, i in enumerate(edf_sequence([a, b]), start=1):
        seen[i] += 1
        assert abs(seen[0] - k * a / (a + b)) < 1.0


def test_round_robin_interleaves():
    assert edf_sequence([5, 1, 1]) == [0, 0, 0, 1, 2, 0, 0]
    assert edf_sequence([3, 1]) == [0, 0, 1, 0] or edf_sequence([3, 1]) == [0, 1, 0, 0]


def test_round_robin_huge_weights_use_live_edf():
    hs = host_set(2, [100_003, 200_001])  # coprime sum > 2**16: no precomputed sequence
    lb = RoundRobin(hs, rng=rng())
    c = counts(lb, 30_000)
    assert abs(c[hs.hosts[1]] / 30_000 - 2 / 3) < 0.01


# -- least request ---------------------------------------------------------------------------
def test_least_request_prefers_idle_hosts():
    hs = host_set(4)
    busy = hs.hosts[:3]
    for h in busy:
        for _ in range(5):
            h.request_started()
    lb = LeastRequest(hs, rng=rng())
    c = counts(lb, 10_000)
    # P2C: the idle host wins every draw it is in: 1 - (3/4)^2 = 43.75% of picks
    assert abs(c[hs.hosts[3]] / 10_000 - 0.4375) < 0.02
    # the busiest host never wins against a less loaded one
    hs.hosts[0].request_started()
    c = counts(lb, 10_000)
    assert c[hs.hosts[0]] < c[hs.hosts[1]] / 2


def test_least_request_p2c_balanced_when_idle():
    hs = host_set(5)
    c = counts(LeastRequest(hs, rng=rng()), 50_000)
    for h in hs.hosts:
        assert abs(c[h] / 50_000 - 0.2) < 0.01


def test_least_request_weighted_honours_weights_and_load():
    hs = host_set(2, [1, 3])
    lb = LeastRequest(hs, rng=rng())
    c = counts(lb, 40_000)
    assert abs(c[hs.hosts[1]] / 40_000 - 0.75) < 0.01
    # host 1 carries 5 active requests: effective weight 3/6 = 0.5 vs 1/1 → 1:2 split
    for _ in range(5):
        hs.hosts[1].request_started()
    c = counts(lb, 30_000)
    assert abs(c[hs.hosts[0]] / 30_000 - 2 / 3) < 0.01


def test_least_request_bias_zero_is_weighted_round_robin():
    hs = host_set(2, [1, 3])
    for _ in range(10):
        hs.hosts[1].request_started()
    c = counts(LeastRequest(hs, active_request_bias=0.0, rng=rng()), 4_000)
    assert c[hs.hosts[1]] == 3_000


def test_least_request_rejects_bad_config():
    with pytest.raises(ValueError, match="choice_count"):
        LeastRequest(host_set(2), choice_count=1)


# -- random ---------------------------------------------------------------------------------
def test_random_is_uniform_and_ignores_weights_like_envoy():
    hs = host_set(4, [1, 1, 1, 7])
    c = counts(Random(hs, rng=rng()), 40_000)
    for h in hs.hosts:
        assert abs(c[h] / 40_000 - 0.25) < 0.01


# -- health, panic, priorities ----------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_ejected_and_unhealthy_hosts_are_not_chosen(cls):
    hs = HostSet(endpoints(9) + [Endpoint("10.9.0.1", 80, health_status=HealthStatus.DRAINING)])
    eject(hs, 0, 1)
    lb = cls(hs, rng=rng())
    picked = set(counts(lb, 2_000))
    assert picked == set(hs.hosts[2:9])


@pytest.mark.parametrize("cls", ALL)
def test_ejection_takes_effect_on_the_next_choose(cls):
    hs = host_set(3)
    lb = cls(hs, rng=rng())
    lb.choose()
    eject(hs, 2)
    assert hs.hosts[2] not in counts(lb, 500)
    hs.set_health_flag(hs.hosts[2], HealthFlag.FAILED_OUTLIER_CHECK, False)
    assert hs.hosts[2] in counts(lb, 500)


@pytest.mark.parametrize("cls", ALL)
def test_panic_below_half_healthy_balances_over_all_hosts(cls):
    hs = host_set(10)
    eject(hs, *range(6))  # 40% healthy < 50%
    lb = cls(hs, rng=rng())
    assert lb.in_panic
    assert set(counts(lb, 5_000)) == set(hs.hosts)
    assert lb.lb_healthy_panic == 5_000


@pytest.mark.parametrize("cls", ALL)
def test_at_half_healthy_no_panic(cls):
    hs = host_set(10)
    eject(hs, *range(5))
    lb = cls(hs, rng=rng())
    assert not lb.in_panic
    assert set(counts(lb, 3_000)) == set(hs.hosts[5:])


@pytest.mark.parametrize("cls", ALL)
def test_no_hosts_or_panic_disabled_returns_none(cls):
    assert cls(HostSet([]), rng=rng()).choose() is None
    hs = host_set(3)
    eject(hs, 0, 1, 2)
    assert cls(hs, panic_threshold=0, rng=rng()).choose() is None  # → 503 UH
    assert cls(hs, rng=rng()).choose() is not None  # default: panic, all hosts


def test_priority_load_matches_envoy_tables():
    # (hosts, healthy, degraded) per level; P=1 fully healthy
    def healthy_load(p0_healthy_pct, p1=(100, 100, 0)):
        return priority_load([(100, p0_healthy_pct, 0), p1]).healthy

    assert healthy_load(100) == (100, 0)
    assert healthy_load(72) == (100, 0)
    assert healthy_load(71) == (99, 1)
    assert healthy_load(50) == (70, 30)
    assert healthy_load(25) == (35, 65)
    assert healthy_load(0) == (0, 100)
    # both levels degraded in health: normalized to the total (35 + 35 = 70)
    assert priority_load([(100, 25, 0), (100, 25, 0)]).healthy == (50, 50)
    assert priority_load([(100, 25, 0), (100, 25, 0)]).panic == (True, True)


def test_degraded_hosts_take_load_only_when_healthy_ones_fall_short():
    assert priority_load([(100, 100, 0)]) .healthy == (100,)
    plan = priority_load([(100, 71, 29)])
    assert (plan.healthy, plan.degraded) == ((99,), (1,))
    plan = priority_load([(100, 25, 65)])
    assert (plan.healthy, plan.degraded, plan.panic) == ((35,), (65,), (False,))


def test_total_panic_spreads_by_host_count_and_zero_threshold_disables():
    plan = priority_load([(3, 0, 0), (1, 0, 0)])
    assert plan.healthy == (75, 25) and plan.panic == (True, True)
    plan = priority_load([(3, 0, 0)], panic_threshold=0)
    assert plan.healthy == (0,) and plan.panic == (False,)


def test_failover_to_lower_priority():
    hs = HostSet(endpoints(4, priority=0) + endpoints(4, priority=1, base=10))
    lb = RoundRobin(hs, rng=rng())
    assert {h.priority for h in counts(lb, 100)} == {0}
    eject(hs, 0, 1)  # P0 50% healthy → health 70: 70% to P0, 30% to P1
    c = counts(lb, 10_000)
    p1 = sum(n for h, n in c.items() if h.priority == 1)
    assert abs(p1 / 10_000 - 0.30) < 0.02


def test_degraded_endpoints_from_eds_get_spillover():
    eps = endpoints(3) + [Endpoint("10.7.0.1", 80, health_status=HealthStatus.DEGRADED)]
    hs = HostSet(eps)  # 75% healthy: 100 % to healthy hosts
    lb = Random(hs, rng=rng())
    assert hs.priorities[0].degraded[0] not in counts(lb, 2_000)
    eject(hs, 0)  # 50% healthy → 70 healthy, 25%·1.4=35 → 30 degraded
    c = counts(lb, 20_000)
    assert abs(c[hs.priorities[0].degraded[0]] / 20_000 - 0.30) < 0.02


# -- retries ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_retry_excludes_previous_hosts(cls):
    hs = host_set(3)
    lb = cls(hs, rng=rng())
    tried = {hs.hosts[0], hs.hosts[1]}
    ctx = ChooseContext(exclude=tried, max_reselects=5)
    picks = counts(lb, 3_000, ctx)
    again = sum(n for h, n in picks.items() if h in tried) / 3_000
    # Envoy's semantics: up to 5 re-picks, then the last pick stands. Round robin walks
    # on (never repeats); random pickers repeat with probability (2/3)^6 ≈ 8.8%.
    assert again == 0 if cls is RoundRobin else abs(again - (2 / 3) ** 6) < 0.02


def test_retry_keeps_last_pick_when_all_are_excluded():
    hs = host_set(2)
    lb = RoundRobin(hs, rng=rng())
    assert lb.choose(ChooseContext(exclude=set(hs.hosts))) in hs.hosts


level = st.integers(0, 20).flatmap(
    lambda t: st.tuples(st.just(t), st.integers(0, t)).flatmap(
        lambda th: st.tuples(st.just(th[0]), st.just(th[1]), st.integers(0, th[0] - th[1]))))


@given(st.lists(level, min_size=1, max_size=4), st.sampled_from([0.0, 50.0, 80.0]))
def test_priority_load_always_sums_to_100_when_a_host_can_take_it(levels, threshold):
    plan = priority_load(levels, threshold)
    total = sum(plan.healthy) + sum(plan.degraded)
    anything = any(h + d for _, h, d in levels) or (threshold > 0 and any(t for t, _, _ in levels))
    assert total == (100 if anything else 0)
    for (t, h, d), hl, dl, panic in zip(levels, plan.healthy, plan.degraded, plan.panic):
        assert (hl == 0 or h or panic) and (dl == 0 or d or panic) and (t or not hl + dl)
