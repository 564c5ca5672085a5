"""One scheduler for every model in the server: a resource pool, per-model queues, priorities,
deadlines, and instance counts that follow the load.

The shape is TF Serving's shared batch scheduler (one pool of threads, one queue per model,
interleaved) with Triton's rate limiter on top (an execution holds named resources from a pool
while it runs; priorities decide who runs next when they are short):

- Each model has a ``ModelQueue``: its requests (whole requests, in arrival order), its priority,
  its queue policy and its *instances*, the number of executions it may have running at once.
- A fixed set of worker threads pulls work: a free thread takes, under one lock, the next batch
  of the model that is due, holds that model's per-execution resources from the pool, runs the
  model call itself, hands the answers to the event loop in one call, and releases the
  resources. No hop through the event loop between batches.
- "Due" is stride scheduling: every model with work has a pass value; the model with the
  lowest pass runs next and its pass grows by its priority, so a model at priority p gets 1/p
  of the executions of a priority-1 model while both have work and never starves. A model that
  becomes busy again starts at the current pass (an idle model banks no credit, and releases
  its share at once). When the head of that order lacks a resource, others run only on
  resources it is not waiting for (backfilling that never delays it).
- Deadlines: a request carries one (its queue policy's ``timeout_ms`` or the client's); a
  request still queued at its deadline is answered ``DeadlineExceeded`` and never run.
- A full queue rejects the new request (429) or drops its oldest (``on_full``).
- Instances follow the load: with every instance busy and a backlog for ``scale_up_after_ms``,
  and resources free, the model gets one more (up to ``max``); an instance unused for
  ``idle_s`` is stopped (down to ``min``); a model unused for ``unload_after_s`` is reported
  through ``on_idle`` (the data plane unloads it) and starts again on its next request.

All state is guarded by one ``threading.Condition``; the event loop only appends requests and
receives answers (``call_soon_threadsafe``, once per batch).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from typing import Callable, Optional, Sequence

from .errors import DeadlineExceeded, InferenceFailed, Overloaded, Unavailable, shorten
from .metrics import ServingMetrics
from .runtime import ModelRuntime, Prediction

log = logging.getLogger(__name__)

_HOUSEKEEPING_S = 0.25  # an idle worker wakes this often to shrink or unload idle models


@dataclasses.dataclass
class BatchTimings:
    queue_s: float
    batch_s: float
    inference_s: float
    batch_size: int


@dataclasses.dataclass
class QueueSettings:
    """What the scheduler needs to know about one model (built from the serving config)."""

    priority: int = 1
    max_batch_size: int = 64
    batching: bool = True
    max_wait_s: float = 0.0
    max_queue: int = 512
    on_full: str = "reject"  # reject | drop_oldest
    min_instances: int = 1
    max_instances: int = 1
    resources: dict = dataclasses.field(default_factory=lambda: {"cpu": 1})
    scale_up_after_s: float = 0.02
    idle_s: float = 5.0
    unload_after_s: Optional[float] = None


class _Item:
    __slots__ = ("runtime", "texts", "future", "loop", "enqueued", "deadline", "state")

    def __init__(self, runtime, texts, future, loop, enqueued, deadline):
        self.runtime: ModelRuntime = runtime
        self.texts: Sequence[bytes] = texts
        self.future: asyncio.Future = future
        self.loop: asyncio.AbstractEventLoop = loop
        self.enqueued: float = enqueued
        self.deadline: Optional[float] = deadline
        self.state = "queued"  # queued | taken | expired | dropped


class ResourcePool:
    """Named resource counts; ``take``/``give`` are called with the scheduler's lock held."""

    def __init__(self, capacity: dict[str, int], metrics: Optional[ServingMetrics] = None):
        self.capacity = dict(capacity)
        self.free = dict(capacity)
        self._in_use = {}
        if metrics is not None:
            for name, count in capacity.items():
                metrics.pool_capacity.labels(name).set(count)
                self._in_use[name] = metrics.pool_in_use.labels(name)

    def fits(self, needs: dict[str, int]) -> bool:
        return all(self.free.get(r, 0) >= n for r, n in needs.items())

    def short_of(self, needs: dict[str, int]) -> set[str]:
        return {r for r, n in needs.items() if self.free.get(r, 0) < n}

    def take(self, needs: dict[str, int]) -> None:
        for r, n in needs.items():
            self.free[r] -= n
            if r in self._in_use:
                self._in_use[r].set(self.capacity[r] - self.free[r])

    def give(self, needs: dict[str, int]) -> None:
        for r, n in needs.items():
            self.free[r] += n
            if r in self._in_use:
                self._in_use[r].set(self.capacity[r] - self.free[r])


class ModelQueue:
    """One model's requests and scheduling state (touched only with the scheduler's lock held,
    except the counters read for metrics and admission)."""

    def __init__(self, name: str, settings: QueueSettings, metrics: ServingMetrics):
        self.name = name
        self.s = settings
        self.items: collections.deque[_Item] = collections.deque()
        self.queued_texts = 0  # texts of live (queued) items
        self.live = 0  # live items
        self.running = 0
        self.instances = settings.min_instances
        self.pass_ = 0.0
        self.backlog_since: Optional[float] = None
        self.idle_since: Optional[float] = None
        self.last_used = time.perf_counter()
        self.unloaded = False
        self.reloading = 0  # requests waiting for the model to load again: it must not unload meanwhile
        self.executions = 0
        self.closed = False
        priority = str(settings.priority)
        self._depth = metrics.queue_depth.labels(name)
        self._instances = metrics.instances.labels(name)
        self._instances.set(self.instances)
        self.executions_metric = metrics.executions.labels(name, priority)
        self.wait_metric = metrics.queue_wait.labels(name, priority)
        self.expired_metric = metrics.deadline_expired.labels(name)
        self.scaled_metric = {d: metrics.instance_changes.labels(name, d) for d in ("up", "down", "unload", "reload")}
        metrics.oldest_wait.labels(name).set_function(self.oldest_wait)

    def oldest_wait(self) -> float:
        """Seconds the oldest queued request has waited (0 when none): the starvation signal."""
        for item in list(self.items)[:64]:
            if item.state == "queued":
                return max(0.0, time.perf_counter() - item.enqueued)
        return 0.0

    def set_instances(self, n: int, direction: str) -> None:
        self.instances = n
        self._instances.set(n)
        self.scaled_metric[direction].inc()

    def head(self) -> Optional[_Item]:
        while self.items and self.items[0].state != "queued":
            self.items.popleft()
        return self.items[0] if self.items else None

    def count_out(self, item: _Item, state: str) -> None:
        item.state = state
        self.live -= 1
        self.queued_texts -= len(item.texts)
        self._depth.set(self.queued_texts)


class Scheduler:
    """The shared scheduler: ``register`` a model, ``submit`` from the event loop, worker threads run."""

    def __init__(
        self,
        pool: ResourcePool,
        metrics: ServingMetrics,
        threads: int,
        on_idle: Optional[Callable[[str], None]] = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.pool = pool
        self.metrics = metrics
        self.threads = threads
        self.on_idle = on_idle
        self._clock = clock
        self._cond = threading.Condition()
        self._queues: dict[str, ModelQueue] = {}
        self._vtime = 0.0  # the pass of the last execution started
        self._workers: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Scheduler":
        for i in range(self.threads):
            t = threading.Thread(target=self._work, name=f"model-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> None:
        """Stops after every queued and running request is answered."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._workers:
            t.join(timeout=120)
        self._workers.clear()

    def register(self, name: str, settings: QueueSettings) -> ModelQueue:
        with self._cond:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = ModelQueue(name, settings, self.metrics)
            return queue

    def busy(self, queue: ModelQueue) -> bool:
        return queue.live > 0 or queue.running > 0

    # -- the event-loop side -----------------------------------------------------------------
    def submit(self, queue: ModelQueue, runtime: ModelRuntime, texts: Sequence[bytes], timeout_s: Optional[float]) -> _Item:
        """Queues a request (event-loop thread); Overloaded when the queue is full and rejects."""
        loop = asyncio.get_running_loop()
        now = self._clock()
        item = _Item(runtime, texts, loop.create_future(), loop, now, now + timeout_s if timeout_s is not None else None)
        dropped: list[_Item] = []
        with self._cond:
            if self._stopping or queue.closed:
                raise Unavailable(f"model {shorten(queue.name)} is shutting down; retry on another replica")
            limit = queue.s.max_queue
            if queue.queued_texts + len(texts) > limit:
                if queue.s.on_full != "drop_oldest" or len(texts) > limit:
                    raise Overloaded(
                        f"model '{queue.name}' is overloaded: {queue.queued_texts} texts already queued "
                        f"(limit {limit}); retry after a short backoff"
                    )
                while queue.queued_texts + len(texts) > limit:
                    oldest = queue.head()
                    queue.items.popleft()
                    queue.count_out(oldest, "dropped")
                    dropped.append(oldest)
            if queue.live == 0 and queue.running == 0:
                queue.pass_ = max(queue.pass_, self._vtime)  # no credit banked while idle
            queue.items.append(item)
            queue.live += 1
            queue.queued_texts += len(texts)
            queue._depth.set(queue.queued_texts)
            queue.last_used = now
            if queue.unloaded:
                queue.unloaded = False
                queue.set_instances(queue.s.min_instances, "reload")
            self._cond.notify()
        for old in dropped:
            _fail(old, Overloaded(f"model '{queue.name}' dropped this request, the oldest in its full queue (queue.on_full: drop_oldest); retry"))
        return item

    def expire(self, queue: ModelQueue, item: _Item) -> bool:
        """The item's deadline passed: answered DeadlineExceeded unless a worker already took it."""
        with self._cond:
            if item.state != "queued":
                return False
            self._expired(queue, item)
        return True

    def wake(self, queue: ModelQueue) -> None:
        """A request waits for its unloaded model to load again: no unloading until ``woken``."""
        with self._cond:
            queue.reloading += 1
            queue.last_used = self._clock()
            if queue.unloaded:
                queue.unloaded = False
                queue.set_instances(queue.s.min_instances, "reload")

    def woken(self, queue: ModelQueue) -> None:
        with self._cond:
            queue.reloading -= 1
            queue.last_used = self._clock()

    def close(self, queue: ModelQueue) -> None:
        with self._cond:
            queue.closed = True

    # -- the worker side ---------------------------------------------------------------------
    def _work(self) -> None:
        idle_calls: list[str] = []
        while True:
            with self._cond:
                while True:
                    now = self._clock()
                    choice, wait = self._pick(now, idle_calls)
                    if choice is not None or idle_calls:
                        break
                    if self._stopping and not any(q.live or q.running for q in self._queues.values()):
                        return
                    self._cond.wait(wait)
            for name in idle_calls:
                self._report_idle(name)
            idle_calls.clear()
            if choice is None:
                continue
            queue, items, size, formed = choice
            try:
                self._execute(queue, items, size, formed)
            finally:
                with self._cond:
                    queue.running -= 1
                    self.pool.give(queue.s.resources)
                    queue.last_used = self._clock()
                    self._cond.notify_all()

    def _report_idle(self, name: str) -> None:
        if self.on_idle is None:
            return
        try:
            self.on_idle(name)
        except Exception:  # unloading is an optimisation: a failure leaves the model loaded
            log.exception("unloading idle model %s failed; it stays loaded", name)

    def _pick(self, now: float, idle_calls: list[str]):
        """(queue, items, texts, now) to run next, or None and how long to wait. Lock held."""
        wait = _HOUSEKEEPING_S
        candidates: list[ModelQueue] = []
        for q in self._queues.values():
            head = q.head()
            if head is None:
                q.backlog_since = None
                self._shrink(q, now, idle_calls)
                continue
            if head.deadline is not None:
                wait = min(wait, max(0.0, head.deadline - now))
            if q.running >= q.instances:
                self._grow(q, now)
                if q.running >= q.instances:
                    wait = min(wait, q.s.scale_up_after_s) if q.instances < q.s.max_instances else wait
                    continue
            q.idle_since = None
            ripe = q.s.max_wait_s <= 0 or q.queued_texts >= q.s.max_batch_size or now >= head.enqueued + q.s.max_wait_s
            if not ripe and not self._stopping:
                wait = min(wait, head.enqueued + q.s.max_wait_s - now)
                continue
            candidates.append(q)
        if not candidates:
            return None, max(wait, 0.0005)
        candidates.sort(key=lambda q: (q.pass_, q.s.priority, q.head().enqueued))
        waiting_for: set[str] = set()
        for q in candidates:
            needs = q.s.resources
            if not self.pool.fits(needs) or waiting_for.intersection(needs):
                waiting_for |= self.pool.short_of(needs) | (waiting_for & set(needs))
                continue
            return self._take(q, now), 0.0
        return None, wait

    def _take(self, q: ModelQueue, now: float):
        max_batch = q.s.max_batch_size if q.s.batching else 1
        items: list[_Item] = []
        size = 0
        while True:
            head = q.head()
            if head is None:
                break
            if items and (not q.s.batching or size + len(head.texts) > max_batch):
                break
            q.items.popleft()
            if head.deadline is not None and now >= head.deadline:  # due to expire: never run
                self._expired(q, head)
                continue
            q.count_out(head, "taken")
            items.append(head)
            size += len(head.texts)
        if not items:
            return None
        self._vtime = q.pass_
        q.pass_ += q.s.priority
        q.running += 1
        q.executions += 1
        self.pool.take(q.s.resources)
        return q, items, size, now

    def _expired(self, q: ModelQueue, item: _Item) -> None:
        """A queued item past its deadline (lock held): out of the queue, answered on its loop."""
        q.count_out(item, "expired")
        q.expired_metric.inc()
        waited = self._clock() - item.enqueued
        _fail(item, DeadlineExceeded(
            f"the request waited {waited * 1000:.0f} ms in model '{q.name}''s queue and passed its deadline "
            f"of {(item.deadline - item.enqueued) * 1000:.0f} ms (queue.timeout_ms or the request's own timeout); "
            f"it was not run: retry later or allow more time"
        ))

    def _grow(self, q: ModelQueue, now: float) -> None:
        if q.instances >= q.s.max_instances or not self.pool.fits(q.s.resources):
            q.backlog_since = None
            return
        if q.backlog_since is None:
            q.backlog_since = now
        elif now - q.backlog_since >= q.s.scale_up_after_s:
            q.set_instances(q.instances + 1, "up")
            q.backlog_since = None
            log.info("model %s: backlog of %d texts with every instance busy; now %d instances", q.name, q.queued_texts, q.instances,
                     extra={"model": q.name, "event": "instances_up", "instances": q.instances})

    def _shrink(self, q: ModelQueue, now: float, idle_calls: list[str]) -> None:
        """No queued work: stop an instance unused for idle_s; report a model unused for unload_after_s."""
        if q.running < q.instances and q.instances > q.s.min_instances:
            if q.idle_since is None:
                q.idle_since = now
            elif now - q.idle_since >= q.s.idle_s:
                q.set_instances(q.instances - 1, "down")
                q.idle_since = now
                log.info("model %s: idle; now %d instances", q.name, q.instances,
                         extra={"model": q.name, "event": "instances_down", "instances": q.instances})
        unload = q.s.unload_after_s
        if unload is not None and not q.unloaded and not q.reloading and q.running == 0 and now - q.last_used >= unload:
            q.unloaded = True
            q.set_instances(0, "unload")
            idle_calls.append(q.name)

    def _execute(self, queue: ModelQueue, items: list[_Item], size: int, formed: float) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in items:  # one model call per version (a batch can straddle a swap)
            groups.setdefault(id(item.runtime), []).append(item)
        for group in groups.values():
            runtime = group[0].runtime
            texts: list[bytes] = []
            for item in group:
                texts.extend(item.texts)
            version = str(runtime.version)
            started = self._clock()
            try:
                prediction = runtime.predict(texts)
            except Exception as exc:  # the model failed on this batch: every request in it gets a 500
                log.exception("model %s v%s failed on a batch of %d texts", queue.name, version, len(texts))
                error = InferenceFailed(f"model '{queue.name}' version {version} failed on this input: {type(exc).__name__}")
                for item in group:
                    _fail(item, error)
                continue
            done = self._clock()
            queue.executions_metric.inc()
            m = self.metrics
            m.child(m.stage_latency, queue.name, version, "batch").observe(started - formed)
            m.child(m.stage_latency, queue.name, version, "inference").observe(done - started)
            m.child(m.batch_size, queue.name, version).observe(len(texts))
            queue_hist = m.child(m.stage_latency, queue.name, version, "queue")
            answers = []
            offset = 0
            for item in group:
                n = len(item.texts)
                waited = formed - item.enqueued
                queue_hist.observe(waited)
                queue.wait_metric.observe(waited)
                part = Prediction(prediction.probabilities[offset : offset + n], prediction.labels[offset : offset + n], prediction.classes)
                answers.append((item.future, (part, BatchTimings(waited, started - formed, done - started, len(texts)))))
                offset += n
            loops: dict[int, tuple] = {}
            for item, answer in zip(group, answers):
                loops.setdefault(id(item.loop), (item.loop, []))[1].append(answer)
            for loop, batch in loops.values():
                _call_soon(loop, _deliver, batch)


def _call_soon(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits for the answer any more
        pass


def _deliver(answers: list) -> None:
    for future, result in answers:
        if not future.done():  # the client may have gone away
            future.set_result(result)


def _set_exception(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


def _fail(item: _Item, error: Exception) -> None:
    _call_soon(item.loop, _set_exception, item.future, error)
