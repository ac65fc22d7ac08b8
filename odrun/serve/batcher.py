"""Dynamic batching: one model worker thread fed by a bounded asyncio queue.

The worker takes what is queued (up to max_batch images and max_pixels decoded pixels per model
call); it waits up to the window for more only while enough other requests are being received or
decoded (`arrival()`) to fill the batch: a lone client never pays the window, and a few clients
are not put in lock-step (the model idle while the loop decodes all of them, then the loop idle
while the model runs them: bench/serve.py measured that at 4 clients as 0.84x of no batching);
their requests arrive while the model runs and make the next batch. Under load the batches fill
while the model runs. A short call (< INLINE_S at the fastest per-image time of the last RECENT
calls) of the only client connected runs on the event loop itself: two thread hand-offs fewer, each a
wake-up that a busy machine delays by milliseconds (bench/serve.py: p99 at one client against a
direct call).
"""
import asyncio
import collections
import os
import time
from concurrent.futures import ThreadPoolExecutor

from odrun.serve import profile

INLINE_S = 0.02  # a model call this short may block the loop (health checks wait at most this long)
RECENT = 8  # the model's cost is its fastest of the last calls: on a busy machine one call preempted
# for 30 ms would otherwise send the next ones through the thread (two wake-ups, each delayed there)


def model_threads():
    """The model's intra-op threads under `odrun serve`: the CPUs this process may use (the runtime's
    own default, and what the offline rate bench/serve.py compares with uses). Keeping one core for
    the event loop (cpus - 1) was measured again with the answers' JSON made cheap and the pools not
    spinning: on 2 loaded cores 1 model thread served 40-50 req/s at 16 clients where 2 served
    84-115, alternating rounds (bench/README.md "serve speed", issue 26)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus)


class Job(object):
    __slots__ = ("images", "future", "pixels", "marks", "lone")

    def __init__(self, images, future, marks=profile.OFF, lone=False):
        self.images, self.future, self.marks, self.lone = images, future, marks, lone
        self.pixels = sum(int(im.shape[0]) * int(im.shape[1]) for im in images)


class Batcher(object):
    def __init__(self, runtime, max_batch, timeout_ms, queue_size, metrics, delay_ms=0, max_pixels=None):
        self.runtime = runtime
        self.max_batch = max(1, min(max_batch, runtime.max_batch or max_batch))
        self.max_pixels = max_pixels
        self.timeout = timeout_ms / 1000.0
        self.queue = asyncio.Queue(maxsize=queue_size)
        self.metrics = metrics
        self.delay = delay_ms / 1000.0
        self.executor = ThreadPoolExecutor(1)
        self.task = None
        self.held = None  # a job that did not fit the last batch's pixel budget: first of the next
        self.arriving = 0  # requests received but not yet queued (body read / decode in progress)
        self.recent = collections.deque(maxlen=RECENT)  # seconds per image of the last model calls
        self.span = (0.0, 0.0)  # perf_counter at the start and end of the last model call (profile)

    def start(self):
        self.task = asyncio.ensure_future(self.loop())

    def arrival(self):
        """`with batcher.arrival():` around reading and decoding a request."""
        return _Arrival(self)

    def submit(self, images, marks=profile.OFF, lone=False):
        """A future of the detections; raises asyncio.QueueFull when the queue is full. lone: no other
        client is connected (app.State.lone): the call may run on the event loop."""
        future = asyncio.get_event_loop().create_future()
        self.queue.put_nowait(Job(images, future, marks, lone))
        self.metrics.queue.set(self.queue.qsize())
        return future

    def _run(self, images):
        if self.delay:
            time.sleep(self.delay)
        t0 = time.perf_counter()
        out = self.runtime.detect(images)
        t1 = time.perf_counter()
        self.metrics.inference.observe(t1 - t0)
        self.metrics.batch.observe(len(images))
        self.recent.append((t1 - t0 + self.delay) / max(1, len(images)))
        self.span = (t0, t1)
        profile.batch(len(images))
        return out

    def _inline(self, jobs, images):
        """Run the call on the loop: it is short, its one request's client is the only one connected,
        and no other request is queued or arriving."""
        return len(jobs) == 1 and jobs[0].lone and bool(self.recent) and min(self.recent) * len(images) < INLINE_S \
            and self.arriving <= 0 and self.queue.empty() and self.held is None

    async def _call(self, jobs, images):
        if self._inline(jobs, images):
            return self._run(images)
        return await asyncio.get_event_loop().run_in_executor(self.executor, self._run, images)

    async def _next(self, deadline, count):
        """The next queued job, waiting (until `deadline`) only while enough requests are arriving to
        fill the batch of `count` images so far (else the model runs now: the rest make the next one)."""
        loop = asyncio.get_event_loop()
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            remaining = deadline - loop.time()
            if self.arriving <= 0 or remaining <= 0 or count + self.arriving < self.max_batch:
                return False
            try:
                return await asyncio.wait_for(self.queue.get(), remaining)
            except asyncio.TimeoutError:
                return False

    async def _collect(self, first):
        """[jobs] for one model call, and whether the stop marker was seen."""
        loop = asyncio.get_event_loop()
        jobs, count, pixels = [first], len(first.images), first.pixels
        deadline = loop.time() + self.timeout
        while count < self.max_batch:
            nxt = await self._next(deadline, count)
            if nxt is False:
                break
            if nxt is None:
                return jobs, True
            if count + len(nxt.images) > self.max_batch or \
                    (self.max_pixels and pixels + nxt.pixels > self.max_pixels):
                self.held = nxt
                break
            jobs.append(nxt)
            count, pixels = count + len(nxt.images), pixels + nxt.pixels
        return jobs, False

    async def loop(self):
        while True:
            job, self.held = (self.held, None) if self.held is not None else (await self.queue.get(), None)
            if job is None:
                return
            jobs, stop = await self._collect(job)
            self.metrics.queue.set(self.queue.qsize())
            images = [im for j in jobs for im in j.images]
            try:
                dets = await self._call(jobs, images)
            except Exception as exc:  # noqa: BLE001 - reported to each waiting request as a 500
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
            else:
                at = 0
                for j in jobs:
                    j.marks.mark("queued", self.span[0])
                    j.marks.mark("model_call", self.span[1])
                    if not j.future.done():
                        j.future.set_result(dets[at:at + len(j.images)])
                    at += len(j.images)
            if stop and self.held is None:
                return

    async def close(self):
        await self.queue.put(None)
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)


class _Arrival(object):
    def __init__(self, batcher):
        self.batcher = batcher

    def __enter__(self):
        self.batcher.arriving += 1

    def __exit__(self, *exc):
        self.batcher.arriving -= 1
