"""Dynamic micro-batching over pieces, not files (the sherpa-onnx server's shape, one level down).

A request's audio is planned into pieces (cut at pauses, at most max_segment_seconds) before it is
queued. One task builds each batch round-robin over the requests in arrival order, one piece per
request per round, up to `max_batch` pieces, waiting at most `max_wait_s` for company when a new
request could still join, and decodes it on one worker thread (the event loop keeps serving). So:

- one long file cannot starve short ones: a short request that arrives while a 10-minute file is being
  decoded gets its piece into the next batch, not after the file's 30 pieces;
- work stops when nobody waits for it: a request whose client disconnected or whose `--request-timeout`
  expired has its remaining pieces dropped, also within the batch in flight, between its encoder-sized
  chunks (the chunk being decoded, at most max_batch_seconds of audio, finishes: onnxruntime and the
  search cannot be interrupted).

Requests with different decoding options are decoded as separate groups of the same batch. Results
do not depend on batch composition, so a request gets exactly what it would get alone. If a group
raises, each piece is retried alone (Transcriber.decode_pieces), so one bad request fails by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..runtime import DecodeOptions
from ..runtime.prepare import Prepared
from ..runtime.transcriber import Failure, Result
from .errors import ApiError, overloaded

DecodeFn = Callable[[list[np.ndarray], DecodeOptions], list]  # pieces -> n-best lists (or error strings)
AssembleFn = Callable[[Prepared, list], Result | Failure]


@dataclass(eq=False)
class _Job:
    prep: Prepared
    pieces: list[np.ndarray]
    opts: DecodeOptions
    future: asyncio.Future
    enqueued: float
    next: int = 0  # the next piece to schedule
    left: int = 0  # pieces not yet decoded
    hyps: list = field(default_factory=list)
    words: bool = False  # word timestamps asked for: decoded apart from requests that did not ask

    def __post_init__(self) -> None:
        self.left, self.hyps = len(self.pieces), [None] * len(self.pieces)

    @property
    def schedulable(self) -> bool:
        return not self.future.done() and self.next < len(self.pieces)


class MicroBatcher:
    """`await transcribe(prep, pieces, opts, timeout, gone)` -> Result; raises ApiError 503 (too many
    requests / closing), 504 (timeout) or 499 (client gone)."""

    def __init__(
        self,
        decode: DecodeFn,
        assemble: AssembleFn,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int = 2,
        on_batch: Callable[[int, float, int], None] | None = None,
        sample_rate: int = 16000,
        min_piece: int = 0,
    ) -> None:
        self._decode, self._assemble = decode, assemble
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self._retry_after = retry_after_s
        self.sample_rate, self.min_piece = sample_rate, min_piece  # for splitting a batch as the encoder takes it
        self._on_batch = on_batch  # (requests in the batch, seconds spent decoding it, samples decoded)
        self._jobs: list[_Job] = []  # admitted and unfinished, in arrival order
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kdasr-decode")
        self._task: asyncio.Task | None = None
        self._closing = False
        self.busy = 0  # requests with a piece in the batch being decoded

    @property
    def depth(self) -> int:
        """Requests waiting for their first piece to be decoded."""
        return sum(1 for j in self._jobs if j.next == 0 and not j.future.done())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kdasr-batcher")

    def has_room(self, incoming: int = 0) -> bool:
        """`incoming`: requests admitted upstream and not queued yet (uploads being decoded)."""
        return not self._closing and len(self._live()) + incoming < self.max_queue + self.max_batch

    async def stop(self) -> None:
        """Refuse new work, finish everything admitted, then stop the worker thread."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def _live(self) -> list[_Job]:
        return [j for j in self._jobs if not j.future.done()]

    def check_room(self, incoming: int = 0) -> None:
        if self._closing:
            raise overloaded("server is shutting down", self._retry_after)
        if not self.has_room(incoming):
            raise overloaded(f"server busy: {self.max_queue} requests already queued", self._retry_after)

    async def transcribe(self, prep: Prepared, pieces: list[np.ndarray], opts: DecodeOptions, timeout_s: float,
                         gone: Callable[[], Awaitable[None]] | None = None, words: bool = False) -> Result | Failure:
        self.check_room()
        loop = asyncio.get_running_loop()
        job = _Job(prep, pieces, opts, loop.create_future(), time.monotonic(), words=words)
        if not pieces:
            outcome = self._as_outcome(self._assemble(prep, []))
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        self._jobs.append(job)
        self._wake.set()
        waiters = {asyncio.ensure_future(asyncio.shield(job.future))}
        watcher = asyncio.ensure_future(gone()) if gone is not None else None
        if watcher is not None:
            waiters.add(watcher)
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if job.future.done() and not job.future.cancelled():
            return job.future.result()
        job.future.cancel()  # its remaining pieces are never scheduled
        self._wake.set()
        if watcher is not None and watcher in done:
            raise ApiError(499, "client closed the connection; its work was dropped", "client_closed")
        raise ApiError(504, f"request not finished within {timeout_s:g} s", "timeout")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._jobs = self._live()
            if not any(j.schedulable for j in self._jobs):
                if self._closing and not self._jobs:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._wait_for_company(loop)
            batch = self._take_batch()
            if not batch:
                continue
            self.busy = len({id(j) for j, _ in batch})
            started = time.monotonic()
            finished = await loop.run_in_executor(self._executor, self._decode_batch, batch)
            self.busy = 0
            if self._on_batch:
                self._on_batch(len({id(j) for j, _ in batch}), time.monotonic() - started,
                               sum(len(j.pieces[i]) for j, i in batch))
            for job, outcome in finished:
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def _wait_for_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """A batch with room and a newly arrived request waits up to max_wait_s for more requests."""
        deadline = loop.time() + self.max_wait_s
        while self.max_wait_s > 0 and not self._closing:
            pending = sum(len(j.pieces) - j.next for j in self._jobs if j.schedulable)
            fresh = any(j.next == 0 and j.schedulable for j in self._jobs)
            left = deadline - loop.time()
            if pending >= self.max_batch or not fresh or left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    def _take_batch(self) -> list[tuple[_Job, int]]:
        """Up to max_batch (job, piece index) pairs, one piece per request per round, oldest request first."""
        batch: list[tuple[_Job, int]] = []
        while len(batch) < self.max_batch:
            took = False
            for job in self._jobs:
                if job.schedulable:
                    batch.append((job, job.next))
                    job.next += 1
                    took = True
                    if len(batch) == self.max_batch:
                        break
            if not took:
                break
        return batch

    def _decode_batch(self, batch: list[tuple[_Job, int]]) -> list[tuple[_Job, Result | BaseException]]:
        """Worker thread: one decode per distinct options and encoder-sized chunk (as the Transcriber would
        split it), dropping before each chunk the pieces of requests nobody waits for any more; requests
        whose last piece this was are assembled here too (tokenizer work stays off the event loop)."""
        groups: dict[tuple[DecodeOptions, bool], list[tuple[_Job, int]]] = {}
        for job, i in batch:
            groups.setdefault((job.opts, job.words), []).append((job, i))
        failed: dict[int, BaseException] = {}
        for (opts, words), members in groups.items():
            for chunk in self._chunks(members, opts):
                chunk = [(job, i) for job, i in chunk if not job.future.done()]
                if not chunk:
                    continue
                try:
                    hyps = self._decode([job.pieces[i] for job, i in chunk], opts, words)
                except Exception as e:  # noqa: BLE001 - decode_pieces isolates onnxruntime errors; this is a bug
                    for job, _ in chunk:
                        failed[id(job)] = _decode_error(e)
                    continue
                for (job, i), h in zip(chunk, hyps, strict=True):
                    job.hyps[i] = h
        out, seen = [], set()
        for job, _ in batch:
            if id(job) in seen:
                continue
            seen.add(id(job))
            job.left -= sum(1 for j, _ in batch if j is job)
            if id(job) in failed:
                out.append((job, failed[id(job)]))
            elif job.left == 0 and not job.future.done():
                out.append((job, self._as_outcome(self._assemble(job.prep, job.hyps))))
        return out

    def _chunks(self, members: list[tuple[_Job, int]], opts: DecodeOptions) -> list[list[tuple[_Job, int]]]:
        """Length-sorted runs of at most batch_size pieces and max_batch_seconds of padded audio: what one
        encoder call takes (Transcriber.decode_pieces splits the same way), and where work can stop."""
        size = lambda m: max(len(m[0].pieces[m[1]]), self.min_piece)  # noqa: E731
        most = opts.max_batch_seconds * self.sample_rate
        chunks: list[list[tuple[_Job, int]]] = []
        for m in sorted(members, key=size):
            if chunks and len(chunks[-1]) < opts.batch_size and size(m) * (len(chunks[-1]) + 1) <= most:
                chunks[-1].append(m)
            else:
                chunks.append([m])
        return chunks

    @staticmethod
    def _as_outcome(r: Result | Failure) -> Result | BaseException:
        if isinstance(r, Failure):
            return ApiError(400, f"{r.source}: {r.reason}", "invalid_audio", "file")
        return r


def _decode_error(e: Exception) -> ApiError:
    detail = str(e).splitlines()[0] if str(e) else ""
    return ApiError(500, f"decoding failed: {type(e).__name__}: {detail}", "decode_error")
