"""asyncio: awaiting jobs and streaming audio never blocks the event loop."""

import asyncio

import numpy as np
import pytest

import voxkit
from conftest import GREEDY


def test_asyncio(engine, offline_audio):
    audio, _ = offline_audio

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():  # runs only while the loop is free
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def streamed():
            with engine.tts(**GREEDY, stream=True) as job:
                return [chunk async for chunk in job.astream()]

        async def transcribed():
            with engine.asr(audio, 24000, max_new_tokens=4) as job:
                info = await job.wait_async(timeout=120)
                return info, job.text

        async def timed_out():
            with engine.tts("Long. " * 20, max_new_tokens=400) as job:
                with pytest.raises(voxkit.VoxError) as err:
                    await job.wait_async(timeout=0.05)
                job.cancel()
                return err.value.code, (await job.wait_async(30)).state

        tick = asyncio.ensure_future(ticker())
        results = await asyncio.gather(streamed(), transcribed(), timed_out())
        stop.set()
        await tick
        return results, ticks

    (chunks, (info, text), timeout), ticks = asyncio.run(main())
    print(f"asyncio: {len(chunks)} chunks, transcript {text!r}, the loop ticked {ticks} times")
    np.testing.assert_allclose(np.concatenate(chunks), audio, rtol=0, atol=1e-5)
    assert info.state == voxkit.JobState.DONE and isinstance(text, str)
    assert timeout == (voxkit.VOX_ERR_TIMEOUT, voxkit.JobState.CANCELLED)
    assert ticks >= 20, "the event loop was blocked"
