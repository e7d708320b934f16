from __future__ import annotations

import pytest

from tests.pilot.xds.harness import start_harness


@pytest.fixture
async def xds():
    h = await start_harness()
    try:
        yield h
    finally:
        await h.close()
