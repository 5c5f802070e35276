import asyncio
import contextlib

import pytest


class Pulse:
    """A periodic task on the running loop; ``stop()`` cancels it and waits for it to end."""

    def __init__(self):
        self.data = bytearray(100_000)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        while True:
            await asyncio.sleep(0.05)

    async def stop(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.mark.asyncio(loop_scope="module")
async def test_leak_task_on_a_module_loop():
    Pulse()


@pytest.mark.asyncio(loop_scope="module")
async def test_clean_task_on_a_module_loop():
    await Pulse().stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_leak_task_on_the_session_loop():
    Pulse()


@pytest.mark.asyncio(loop_scope="session")
async def test_clean_task_on_the_session_loop():
    await Pulse().stop()


@pytest.mark.asyncio
async def test_clean_task_left_on_a_function_loop_is_cancelled_by_its_loop():
    Pulse()
