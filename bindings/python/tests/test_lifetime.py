"""Context managers and finalizers release what they own, exactly once."""

import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import voxkit


def _unknown(job):
    with pytest.raises(voxkit.VoxError) as err:
        job.poll()
    return err.value.code == voxkit.VOX_ERR_UNKNOWN_JOB


def test_with_block_releases_the_job(engine):
    held = engine.stats().jobs_held
    with engine.tts("Released.", max_new_tokens=2) as job:
        assert engine.stats().jobs_held == held + 1
    assert engine.stats().jobs_held == held
    assert _unknown(job)  # the id went back to the library: it no longer knows it
    job.release()  # a second release is a no-op, not an error


def test_released_job_refuses_every_call(engine):
    job = engine.tts("Released.", max_new_tokens=2)
    job.release()
    for call in (job.poll, job.cancel, job.timings, job.read, lambda: job.wait(1),
                 lambda: job.text):
        with pytest.raises(voxkit.VoxError) as err:
            call()
        assert err.value.code == voxkit.VOX_ERR_UNKNOWN_JOB, call


def test_garbage_collection_releases_the_job(engine):
    held = engine.stats().jobs_held
    job = engine.tts("Dropped.", max_new_tokens=2)
    del job
    gc.collect()
    assert engine.stats().jobs_held == held


def test_closing_an_engine(checkpoints):
    """close() waits for the calls in flight (a thread blocked in wait() sees VoxError, not a
    crash); later calls on the engine or its jobs raise; a second close does nothing."""
    engine = voxkit.Engine(checkpoints[0], device="cpu", cpu_threads=1)
    job = engine.tts("A long text. " * 8, max_new_tokens=400)
    ring = job.open_ring(1 << 16)
    outcome = []

    def waiter():
        try:
            job.wait()
            outcome.append("ended")
        except voxkit.VoxError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    with engine:
        pass
    thread.join(5)
    print(f"close with a waiter: {time.monotonic() - started:.3f} s, waiter saw {outcome}")
    assert not thread.is_alive() and len(outcome) == 1
    assert outcome[0] == "ended" or outcome[0].code == voxkit.VOX_ERR_INVALID_ARGUMENT
    assert engine.closed
    engine.close()
    for call in (job.poll, engine.stats, lambda: engine.tts("Hi.")):
        with pytest.raises(voxkit.VoxError) as err:
            call()
        assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT and "closed" in err.value.message
    job.release()  # the engine freed its jobs already: nothing to do
    # A ring outlives its engine: it reads what was produced, then says the stream ended.
    buf = np.empty(1 << 16, np.float32)
    assert any(ring.read_into(buf)[1] for _ in range(100)), "the ring did not end"
    ring.close()


def test_engine_finalizer(native):
    engine = voxkit.Engine(device="cpu")
    handle = engine._handle
    del engine
    gc.collect()
    assert handle.closed  # destroyed in __del__


def test_engine_left_open_at_exit(native):
    """An engine with a log callback, never closed, is destroyed at exit while Python can still
    run the callback (the library logs "destroyed" through it), and the process exits cleanly."""
    script = ("import sys, voxkit\n"
              "e = voxkit.Engine(device='cpu', log_level=voxkit.VOX_LOG_INFO,\n"
              "                  log=lambda level, msg: print(level, msg, flush=True))\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(voxkit.__file__)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "engine: destroyed" in done.stdout and "Exception" not in done.stderr
