import asyncio
import contextlib


class Ticker:
    """Re-arms ``loop.call_later`` on a loop that outlives the test."""

    def __init__(self, loop, period):
        self.loop = loop
        self.period = period
        self.data = bytearray(100_000)
        self.handle = None
        loop.call_soon_threadsafe(self._tick)

    def _tick(self):
        self.handle = self.loop.call_later(self.period, self._tick)

    def close(self):
        def cancel():
            if self.handle is not None:
                self.handle.cancel()

        done = asyncio.run_coroutine_threadsafe(_call(cancel), self.loop)
        done.result(5)


async def _call(func):
    func()


class Pulse:
    """A periodic task on the loop it was made on."""

    def __init__(self):
        self.data = bytearray(100_000)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        while True:
            await asyncio.sleep(0.05)


def test_leak_call_later_chain(loop_thread):
    Ticker(loop_thread, 0.05)


def test_clean_call_later_chain(loop_thread):
    ticker = Ticker(loop_thread, 0.05)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0.01), loop_thread).result(5)
    ticker.close()


def test_leak_task_on_the_loop_thread(loop_thread):
    asyncio.run_coroutine_threadsafe(_start_pulse(), loop_thread).result(5)


def test_clean_task_on_the_loop_thread(loop_thread):
    pulse = asyncio.run_coroutine_threadsafe(_start_pulse(), loop_thread).result(5)
    asyncio.run_coroutine_threadsafe(_stop(pulse), loop_thread).result(5)


async def _start_pulse():
    return Pulse()


async def _stop(pulse):
    pulse.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pulse.task
