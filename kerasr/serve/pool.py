"""The worker pool: model calls run on a few threads, and a bounded queue waits for them.

A crowd of requests waits its turn (or is told to come back) instead of loading the whole
crowd's images into memory at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any


class ServerBusy(Exception):
    """Raised by `InferencePool.run` when every worker is busy and the queue is full."""


class InferencePool:
    """Runs model calls on `workers` threads, with at most `max_queue` calls waiting.

    A call counts from submission until its thread finishes it, even if the client that
    asked for it has gone away meanwhile: the memory it holds is only freed then. A call
    that has not started when its client goes away is dropped from the queue.
    """

    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.max_queue = max_queue
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="kerasr-inference"
        )
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Calls running or waiting."""
        return self._admitted

    def _release(self, _future) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Runs `function(*args)` on a worker thread and returns its result.

        Raises:
            ServerBusy: when `workers + max_queue` calls are already admitted.
        """
        with self._lock:
            if self._admitted >= self.workers + self.max_queue:
                raise ServerBusy
            self._admitted += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Drops the queued calls and waits for the running ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)
