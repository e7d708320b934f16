"""Debounce: merge bursts of PushRequests into one push (Istio's PILOT_DEBOUNCE_*).

`DebounceState` is a pure state machine: `on_request(state, req, now)` folds a
request in with `PushRequest.merge`; `decide(state, now)` says push now (and what)
or when to look again: after `quiet` seconds without a new request, or at the
latest `max_delay` after the first one; never while a push is still running.
`Debouncer` is the thin asyncio driver around it (clock and push are injected).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Callable

from isthmus.pilot.push.request import PushRequest, merge
from isthmus.shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class DebounceSettings:
    quiet: float = 0.1  # PILOT_DEBOUNCE_AFTER: push after this long without a new request
    max_delay: float = 10.0  # PILOT_DEBOUNCE_MAX: push at the latest this long after the first
    eds_debounce: bool = True  # False: incremental (EDS-only) requests skip the quiet period

    def __post_init__(self) -> None:
        if self.quiet < 0 or self.max_delay < self.quiet:
            raise ValueError(f"debounce: need 0 <= quiet <= max_delay (got quiet={self.quiet}, max_delay={self.max_delay})")


@dataclass(frozen=True)
class DebounceState:
    pending: PushRequest | None = None
    first_at: float = 0.0  # when the first request of the pending burst arrived
    last_at: float = 0.0  # when the latest one arrived
    merged: int = 0  # requests folded into `pending`
    pushing: bool = False  # a push is running; the next one waits for it


@dataclass(frozen=True)
class Decision:
    state: DebounceState
    push: PushRequest | None = None  # push this now
    wake_at: float | None = None  # else look again at this time (None: on the next event)
    merged: int = 0  # how many requests `push` stands for


def on_request(state: DebounceState, req: PushRequest, now: float) -> DebounceState:
    if state.pending is None:
        return replace(state, pending=req, first_at=now, last_at=now, merged=1)
    return replace(state, pending=merge(state.pending, req), last_at=now, merged=state.merged + 1)


def decide(state: DebounceState, now: float, settings: DebounceSettings) -> Decision:
    pending = state.pending
    if pending is None or state.pushing:
        return Decision(state)
    quiet_at = state.last_at + settings.quiet
    max_at = state.first_at + settings.max_delay
    immediate = not pending.full and not settings.eds_debounce
    if immediate or now >= quiet_at or now >= max_at:
        fired = DebounceState(pushing=True)
        return Decision(fired, push=pending, merged=state.merged)
    return Decision(state, wake_at=min(quiet_at, max_at))


def on_push_done(state: DebounceState) -> DebounceState:
    return replace(state, pushing=False)


class Debouncer:
    """Runs the state machine on the event loop: `submit` requests, `run` until stopped."""

    def __init__(
        self,
        push: Callable[[PushRequest], Awaitable[None]],
        settings: DebounceSettings = DebounceSettings(),
        clock: Callable[[], float] = time.monotonic,
    ):
        self._push = push
        self.settings = settings
        self._clock = clock
        self.state = DebounceState()
        self._wake = asyncio.Event()
        self.pushes = 0  # debounced pushes started (debug pages)
        self.requests = 0

    def submit(self, req: PushRequest) -> None:
        self.requests += 1
        self.state = on_request(self.state, req, self._clock())
        self._wake.set()

    async def run(self) -> None:
        while True:
            decision = decide(self.state, self._clock(), self.settings)
            self.state = decision.state
            if decision.push is not None:
                self.pushes += 1
                asyncio.get_running_loop().create_task(self._run_push(decision.push, decision.merged))
                continue
            timeout = None if decision.wake_at is None else max(0.0, decision.wake_at - self._clock())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _run_push(self, req: PushRequest, merged: int) -> None:
        try:
            await self._push(req)
        except Exception:  # the push reports its own errors; the debouncer must keep going
            log.exception("push failed", merged=merged)
        finally:
            self.state = on_push_done(self.state)
            self._wake.set()
