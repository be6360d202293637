"""Dynamic micro-batching (the sherpa-onnx server's shape): requests wait in an asyncio queue; one
task drains it into batches of up to `max_batch` requests, waiting at most `max_wait_s` for the batch
to fill, and decodes each batch on one worker thread, so the event loop never blocks.

Requests with different decoding options are decoded in separate groups of the same batch (one
`DecodeOptions` per search). Because the runtime's results do not depend on batch composition, a
request gets exactly what it would get alone. If a batch raises, each of its requests is retried
alone, so one bad request fails by itself and never takes the others down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..runtime import DecodeOptions
from ..runtime.transcriber import Failure, Result
from .errors import ApiError, overloaded

DecodeFn = Callable[[list[np.ndarray], DecodeOptions], list[Result | Failure]]


@dataclass
class _Job:
    wave: np.ndarray
    opts: DecodeOptions
    future: asyncio.Future
    enqueued: float


class MicroBatcher:
    """`await transcribe(wave, opts, timeout)` -> Result; raises ApiError 503 (queue full / closing) or 504."""

    def __init__(
        self,
        decode: DecodeFn,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int = 2,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._decode, self.max_batch, self.max_wait_s = decode, max_batch, max_wait_s
        self._retry_after = retry_after_s
        self._on_batch = on_batch  # (requests in the batch, seconds spent decoding it)
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kdasr-decode")
        self._task: asyncio.Task | None = None
        self._closing = False
        self.busy = 0  # requests taken from the queue and not yet answered

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not yet being decoded)."""
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kdasr-batcher")

    async def stop(self) -> None:
        """Refuse new work, finish everything queued, then stop the worker thread."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)  # FIFO: everything queued before it is decoded first
            await self._task
        self._executor.shutdown(wait=True)

    async def transcribe(self, wave: np.ndarray, opts: DecodeOptions, timeout_s: float) -> Result:
        if self._closing:
            raise overloaded("server is shutting down", self._retry_after)
        job = _Job(wave, opts, asyncio.get_running_loop().create_future(), time.monotonic())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise overloaded(f"server busy: {self._queue.maxsize} requests already queued", self._retry_after) from None
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            job.future.cancel()  # skipped if still queued; discarded if being decoded
            raise ApiError(504, f"request not finished within {timeout_s:g} s", "timeout") from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch, deadline = [first], loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:  # whatever is already queued joins at once; then wait up to the deadline
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            live = [j for j in batch if not j.future.done()]  # timed-out requests are not decoded
            if not live:
                continue
            self.busy = len(live)
            started = time.monotonic()
            outcomes = await loop.run_in_executor(self._executor, self._decode_batch, live)
            self.busy = 0
            if self._on_batch:
                self._on_batch(len(live), time.monotonic() - started)
            for job, out in zip(live, outcomes):
                if job.future.done():
                    continue
                if isinstance(out, BaseException):
                    job.future.set_exception(out)
                else:
                    job.future.set_result(out)

    def _decode_batch(self, jobs: list[_Job]) -> list[Result | BaseException]:
        """Worker thread. One decode per distinct options; a group that raises is retried one by one."""
        out: list[Result | BaseException | None] = [None] * len(jobs)
        groups: dict[DecodeOptions, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.opts, []).append(i)
        for opts, idx in groups.items():
            try:
                for i, r in zip(idx, self._decode([jobs[i].wave for i in idx], opts), strict=True):
                    out[i] = self._as_outcome(r)
            except Exception as e:  # noqa: BLE001 - isolate the request that caused it
                for i in idx:
                    out[i] = self._decode_one(jobs[i]) if len(idx) > 1 else _decode_error(e)
        return out  # type: ignore[return-value]

    def _decode_one(self, job: _Job) -> Result | BaseException:
        try:
            return self._as_outcome(self._decode([job.wave], job.opts)[0])
        except Exception as e:  # noqa: BLE001
            return _decode_error(e)

    @staticmethod
    def _as_outcome(r: Result | Failure) -> Result | BaseException:
        if isinstance(r, Failure):
            return ApiError(400, f"{r.source}: {r.reason}", "invalid_audio", "file")
        return r


def _decode_error(e: Exception) -> ApiError:
    detail = str(e).splitlines()[0] if str(e) else ""
    return ApiError(500, f"decoding failed: {type(e).__name__}: {detail}", "decode_error")
