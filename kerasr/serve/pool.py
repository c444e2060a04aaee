"""The worker pool: model calls run on a few threads, and a bounded queue waits for them.

A crowd of requests waits its turn (or is told to come back) instead of loading the whole
crowd's images into memory at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict]]


class ServerBusy(Exception):
    """Raised by `InferencePool.run` when every worker is busy and the queue is full."""


class ClientGone(Exception):
    """Raised by `InferencePool.run` when the client went away before its answer was ready.

    `started` tells whether the call had already started (it then runs to its end, as a
    thread cannot be stopped) or was dropped from the queue without running.
    """

    def __init__(self, started: bool):
        super().__init__("the client went away")
        self.started = started


class InferencePool:
    """Runs model calls on `workers` threads, with at most `max_queue` calls waiting.

    A call counts from submission until its thread finishes it, even if the client that
    asked for it has gone away meanwhile: the memory it holds is only freed then. A call
    that has not started when its client goes away is dropped from the queue (see `run`).
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

    async def run(
        self, function: Callable[..., Any], *args: Any, receive: Receive | None = None
    ) -> Any:
        """Runs `function(*args)` on a worker thread and returns its result.

        Args:
            function: the call; it runs on a worker thread.
            *args: its arguments.
            receive: the request's ASGI `receive` channel, once its body has been read. The
                pool listens on it while the call waits, and drops the call if the client
                disconnects first: abandoned uploads must not keep the queue full.

        Raises:
            ServerBusy: when `workers + max_queue` calls are already admitted.
            ClientGone: when `receive` said the client disconnected before the answer.
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
        answer = asyncio.wrap_future(future)
        if receive is None:
            return await answer
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if answer.done():
            return answer.result()
        # The queued call is dropped (its slot freed at once); a running one finishes on
        # its thread, and its slot is freed when it does. Nobody waits for its answer.
        started = not future.cancel()
        answer.cancel()
        raise ClientGone(started)

    def shutdown(self) -> None:
        """Drops the queued calls and waits for the running ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)


async def _disconnected(receive: Receive) -> None:
    """Returns when the ASGI channel reports that the client disconnected."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a broken channel: nobody can read an answer either
        return
