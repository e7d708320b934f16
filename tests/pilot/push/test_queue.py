"""PushQueue: FIFO per connection, merging with PushRequest.merge, never two pushes at once."""
from __future__ import annotations

import asyncio

import pytest

from isthmus.pilot.push.queue import PushQueue
from isthmus.pilot.push.request import PushRequest


def eds(host: str) -> PushRequest:
    return PushRequest(full=False, eds_hosts=frozenset({host}))


async def test_fifo_and_merge_of_waiting_entries():
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", eds("x"))
    q.enqueue("b", eds("y"))
    q.enqueue("a", PushRequest(full=True))
    assert len(q) == 2 and repr(q) == "<PushQueue [2 waiting, 0 in progress]>"
    key, req = await q.dequeue()
    assert key == "a" and req.full and req.eds_hosts == {"x"}
    key, req = await q.dequeue()
    assert key == "b" and req == eds("y")


async def test_in_progress_key_is_requeued_once_done():
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", eds("x"))
    await q.dequeue()
    q.enqueue("a", eds("y"))
    q.enqueue("a", eds("z"))
    assert len(q) == 0 and q.in_progress == 1  # not handed out twice
    q.mark_done("a")
    key, req = await q.dequeue()
    assert key == "a" and req.eds_hosts == {"y", "z"}
    q.mark_done("a")
    assert len(q) == 0 and q.in_progress == 0


async def test_dequeue_waits_and_close_wakes_workers():
    q: PushQueue[str] = PushQueue()
    waiter = asyncio.get_running_loop().create_task(q.dequeue())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.enqueue("a", eds("x"))
    assert (await asyncio.wait_for(waiter, 1))[0] == "a"
    idle = [asyncio.get_running_loop().create_task(q.dequeue()) for _ in range(3)]
    await asyncio.sleep(0.01)
    q.close()
    assert await asyncio.wait_for(asyncio.gather(*idle), 1) == [None, None, None]


async def test_remove_forgets_a_disconnected_key():
    q: PushQueue[str] = PushQueue()
    q.enqueue("a", eds("x"))
    q.enqueue("b", eds("y"))
    q.remove("a")
    assert q.pending("a") is None
    assert (await q.dequeue())[0] == "b"
    q.remove("b")  # in progress
    q.mark_done("b")
    assert len(q) == 0 and q.in_progress == 0


@pytest.mark.parametrize("n", [1, 50])
async def test_many_workers_each_key_once(n):
    q: PushQueue[int] = PushQueue()
    for k in range(n):
        q.enqueue(k, eds(str(k)))
    got = [await q.dequeue() for _ in range(n)]
    assert sorted(k for k, _ in got) == list(range(n))
