"""The debounce state machine, driven by an explicit clock (no sleeping), and its driver."""
from __future__ import annotations

import asyncio

import pytest

from isthmus.pilot.push.debounce import DebounceSettings, DebounceState, Debouncer, decide, on_push_done, on_request
from isthmus.pilot.push.request import PushRequest, Reason
from isthmus.shared.config.resource import ResourceKey

S = DebounceSettings(quiet=0.1, max_delay=1.0)


def full(name: str, start: float = 0.0) -> PushRequest:
    return PushRequest(full=True, configs_updated=frozenset({ResourceKey("VirtualService", "default", name)}),
                       reasons=((Reason.CONFIG, 1),), start=start)


def eds(host: str) -> PushRequest:
    return PushRequest(full=False, eds_hosts=frozenset({host}), reasons=((Reason.ENDPOINT, 1),))


def test_idle_state_waits_for_events():
    d = decide(DebounceState(), 5.0, S)
    assert d.push is None and d.wake_at is None


def test_quiet_period():
    st = on_request(DebounceState(), full("a"), now=0.0)
    d = decide(st, 0.05, S)
    assert d.push is None and d.wake_at == pytest.approx(0.1)
    d = decide(st, 0.1, S)
    assert d.push == full("a") and d.merged == 1 and d.state.pushing and d.state.pending is None


def test_each_event_restarts_the_quiet_period():
    st = on_request(DebounceState(), full("a"), 0.0)
    st = on_request(st, full("b"), 0.08)
    d = decide(st, 0.12, S)
    assert d.push is None and d.wake_at == pytest.approx(0.18)
    assert decide(st, 0.18, S).push is not None


def test_max_delay_bounds_a_steady_stream():
    st = DebounceState()
    t = 0.0
    fired_at = None
    while t < 2.0:
        st = on_request(st, full(f"vs{int(t * 100)}"), t)
        t = round(t + 0.05, 2)  # an event every 50 ms: never 100 ms quiet
        d = decide(st, t, S)
        st = d.state
        if d.push is not None:
            fired_at = t
            break
    assert fired_at == pytest.approx(1.0)
    assert len(d.push.configs_updated) == d.merged == 20


def test_merge_full_wins_unions_and_keeps_earliest_start():
    st = on_request(DebounceState(), eds("reviews"), 0.0)
    st = on_request(st, PushRequest(full=True, configs_updated=frozenset({ResourceKey("Sidecar", "a", "x")}),
                                    reasons=((Reason.CONFIG, 1),), start=3.0), 0.01)
    st = on_request(st, eds("ratings").merge(PushRequest(full=False, start=2.0)), 0.02)
    d = decide(st, 1.0, S)
    req = d.push
    assert req.full and req.eds_hosts == {"reviews", "ratings"} and req.start == 2.0
    assert req.reason_counts == {Reason.ENDPOINT: 2, Reason.CONFIG: 1} and d.merged == 3


def test_no_second_push_while_one_runs():
    st = decide(on_request(DebounceState(), full("a"), 0.0), 0.2, S).state
    st = on_request(st, full("b"), 0.3)
    d = decide(st, 5.0, S)
    assert d.push is None and d.wake_at is None  # waits for the running push
    d = decide(on_push_done(d.state), 5.0, S)
    assert d.push == full("b").merge(None)


def test_incremental_without_eds_debounce_pushes_at_once():
    s = DebounceSettings(quiet=0.1, max_delay=1.0, eds_debounce=False)
    st = on_request(DebounceState(), eds("reviews"), 0.0)
    assert decide(st, 0.0, s).push is not None
    st = on_request(DebounceState(), full("a"), 0.0)
    assert decide(st, 0.0, s).push is None


def test_settings_are_checked():
    with pytest.raises(ValueError, match="quiet <= max_delay"):
        DebounceSettings(quiet=2, max_delay=1)


async def test_driver_pushes_once_per_burst_and_again_later():
    pushed: list[PushRequest] = []
    gate = asyncio.Event()

    async def push(req):
        pushed.append(req)
        await gate.wait()

    d = Debouncer(push, DebounceSettings(quiet=0.02, max_delay=0.5))
    task = asyncio.get_running_loop().create_task(d.run())
    try:
        for i in range(3):
            d.submit(full(f"a{i}"))
        await asyncio.wait_for(_until(lambda: len(pushed) == 1), 2)
        d.submit(full("b"))  # arrives while the first push runs
        await asyncio.sleep(0.1)
        assert len(pushed) == 1
        gate.set()
        await asyncio.wait_for(_until(lambda: len(pushed) == 2), 2)
        assert len(pushed[0].configs_updated) == 3 and len(pushed[1].configs_updated) == 1
        assert d.pushes == 2 and d.requests == 4
    finally:
        task.cancel()


async def test_driver_survives_a_failing_push():
    calls = []

    async def push(req):
        calls.append(req)
        raise RuntimeError("boom")

    d = Debouncer(push, DebounceSettings(quiet=0.01, max_delay=0.1))
    task = asyncio.get_running_loop().create_task(d.run())
    try:
        d.submit(full("a"))
        await asyncio.wait_for(_until(lambda: len(calls) == 1 and not d.state.pushing), 2)
        d.submit(full("b"))
        await asyncio.wait_for(_until(lambda: len(calls) == 2), 2)
    finally:
        task.cancel()


async def _until(pred):
    while not pred():
        await asyncio.sleep(0.005)
