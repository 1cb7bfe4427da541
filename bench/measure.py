"""Measurements over two ends: bulk throughput, small round trips, pairing, percentiles."""

from __future__ import annotations

import math
import time

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults

from bench.ends import End

MB = 1_000_000


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


async def bulk(sender: End, receiver: End, total: int, chunk: int,
               timeout: float = 120) -> float:
    """Send ``total`` bytes in ``chunk``-sized messages as fast as the path takes them;
    MB/s from the first send until the receiver has every byte."""
    from twisted.internet import reactor
    received = [0]
    done: Deferred = Deferred()

    def take(data: bytes) -> None:
        received[0] += len(data)
        if received[0] >= total and not done.called:
            done.callback(time.perf_counter())
    receiver.on_data = take
    payload = b"\xa5" * chunk
    started = time.perf_counter()
    sent = 0
    while sent < total:
        if not sender.writable:
            await sender.when_writable()
        sender.send(payload)
        sent += chunk
    done.addTimeout(timeout, reactor)
    finished = await done
    receiver.on_data = lambda data: None
    return total / (finished - started) / MB


async def round_trips(client: End, server: End, count: int, size: int = 100,
                      timeout: float = 60) -> list[float]:
    """``count`` request/response exchanges of ``size`` bytes each way; seconds each."""
    from twisted.internet import reactor
    server.on_data = server.send  # echo
    samples = []
    message = b"r" * size
    for _ in range(count):
        got = [0]
        answered: Deferred = Deferred()

        def take(data: bytes, got=got, answered=answered) -> None:
            got[0] += len(data)
            if got[0] >= size and not answered.called:
                answered.callback(None)
        client.on_data = take
        started = time.perf_counter()
        client.send(message)
        answered.addTimeout(timeout, reactor)
        await answered
        samples.append(time.perf_counter() - started)
    server.on_data = client.on_data = lambda data: None
    return samples


async def timed_concurrently(count: int, concurrency: int,
                             make) -> tuple[float, list[float], list]:
    """Run ``make(i)`` (a coroutine) ``count`` times, ``concurrency`` at once: the rate per
    second over the whole run, each call's duration in seconds, and the results."""
    semaphore = DeferredSemaphore(concurrency)
    durations: list[float] = []

    async def one(i: int):
        started = time.perf_counter()
        result = await make(i)
        durations.append(time.perf_counter() - started)
        return result

    started = time.perf_counter()
    results = await gatherResults([semaphore.run(lambda i=i: ensureDeferred(one(i)))
                                   for i in range(count)])
    elapsed = time.perf_counter() - started
    return count / elapsed, durations, results
