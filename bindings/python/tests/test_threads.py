"""The engine is thread-safe: many threads submit, wait and read at once."""

import threading

import numpy as np

from conftest import assert_speech

THREADS = 8


def test_many_threads_submit_at_once(engine, offline_audio):
    held = engine.stats().jobs_held
    start = threading.Barrier(THREADS)
    results, errors = [None] * THREADS, []

    def work(i):
        try:
            start.wait()
            if i % 4 == 3:  # a few ASR jobs among the TTS ones
                with engine.asr(offline_audio[0], 24000, max_new_tokens=3) as job:
                    job.wait(120)
                    results[i] = job.text
            else:
                with engine.tts(f"Thread number {i}.", greedy=True, max_new_tokens=4,
                                stream=i % 2 == 0) as job:
                    results[i] = np.concatenate(list(job.stream()))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for i, result in enumerate(results):
        if i % 4 == 3:
            assert isinstance(result, str)
        else:
            assert_speech(result)
    stats = engine.stats()
    print(f"{THREADS} threads: {stats.batches} batches so far, {stats.jobs_done} jobs done")
    assert stats.jobs_held == held
