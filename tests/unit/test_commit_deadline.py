"""A commit's deadline counts only time in which its answer could be heard.

Applying a large request holds the event loop; a database answer that
arrives meanwhile is read afterwards, so that time must not make a healthy
commit look lost. Work that never answers must still be cancelled.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bourse.server.commit_timing import within_listening_time


async def answer_after(seconds: float, log: list[str]) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    log.append("answered")


def test_work_that_answers_in_time_completes() -> None:
    log: list[str] = []
    asyncio.run(within_listening_time(answer_after(0.05, log), 1.0))
    assert log == ["answered"]


def test_its_failure_is_raised() -> None:
    async def failing() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        asyncio.run(within_listening_time(failing(), 1.0))


def test_work_that_never_answers_is_cancelled() -> None:
    log: list[str] = []
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(within_listening_time(answer_after(60, log), 0.3))
    assert log == ["cancelled"]
    assert time.monotonic() - started < 30


def test_time_the_loop_spends_on_its_own_work_does_not_count() -> None:
    async def scenario(log: list[str]) -> None:
        async def hold_the_loop() -> None:
            await asyncio.sleep(0.05)
            time.sleep(1.0)  # a large request being applied

        holder = asyncio.create_task(hold_the_loop())
        # the answer comes 1.2 s after the start, 0.2 s of it outside the hold
        await within_listening_time(answer_after(1.2, log), 0.5)
        await holder

    log: list[str] = []
    asyncio.run(scenario(log))
    assert log == ["answered"]


def test_a_busy_loop_still_times_out_work_that_never_answers() -> None:
    async def scenario(log: list[str]) -> None:
        async def keep_busy() -> None:
            while True:
                time.sleep(0.2)
                await asyncio.sleep(0)

        busy = asyncio.create_task(keep_busy())
        try:
            await within_listening_time(answer_after(600, log), 0.5)
        finally:
            busy.cancel()

    log: list[str] = []
    with pytest.raises(TimeoutError):
        asyncio.run(scenario(log))
    assert log == ["cancelled"]


def test_cancelling_the_caller_cancels_the_work() -> None:
    async def scenario(log: list[str]) -> None:
        caller = asyncio.create_task(within_listening_time(answer_after(600, log), 60))
        await asyncio.sleep(0.1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller

    log: list[str] = []
    asyncio.run(scenario(log))
    assert log == ["cancelled"]
