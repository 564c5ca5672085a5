"""A small closed-loop HTTP load generator (aiohttp), used by the tests and the benchmark.

``concurrency`` workers each send one request, wait for the answer, and send the next, until
``requests`` have been sent or ``duration_s`` has passed; ``rate`` (requests/s, optional) paces
the workers to a steady arrival rate. Only 127.0.0.1-style local URLs are expected.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
from typing import Callable, Optional, Sequence

import aiohttp
import numpy as np


@dataclasses.dataclass
class LoadResult:
    sent: int
    statuses: collections.Counter
    latencies_s: list[float]  # successful requests only
    versions: list[tuple[float, str]]  # (time since start, served version) of successful requests
    errors: list[str]  # first few failure descriptions
    elapsed_s: float
    rejected_latencies_s: list[float] = dataclasses.field(default_factory=list)  # 429/503 answers
    missing_retry_after: int = 0  # 429/503 answers without a Retry-After header

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000.0) if self.latencies_s else float("nan")


def tfs_body(texts: Sequence[str]) -> bytes:
    return json.dumps({"instances": list(texts)}).encode("utf-8")


async def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    requests: Optional[int] = None,
    duration_s: Optional[float] = None,
    rate: Optional[float] = None,
    version_of: Optional[Callable[[aiohttp.ClientResponse, bytes], str]] = None,
    headers: Optional[dict] = None,
    timeout_s: float = 30.0,
    session: Optional[aiohttp.ClientSession] = None,
) -> LoadResult:
    """``session``: reuse its (already open) connections; by default a new session of
    ``concurrency`` connections is opened and closed."""
    if requests is None and duration_s is None:
        raise ValueError("give requests, duration_s or both")
    statuses: collections.Counter = collections.Counter()
    latencies: list[float] = []
    versions: list[tuple[float, str]] = []
    errors: list[str] = []
    rejected: list[float] = []
    missing_retry_after = 0
    sent = 0
    start = time.perf_counter()
    deadline = start + duration_s if duration_s is not None else None
    interval = 1.0 / rate if rate else 0.0
    hdrs = {"Content-Type": "application/json", **(headers or {})}

    def take() -> Optional[int]:
        nonlocal sent
        if requests is not None and sent >= requests:
            return None
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        sent += 1
        return sent - 1

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal missing_retry_after
        while True:
            i = take()
            if i is None:
                return
            if interval:
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=hdrs) as resp:
                    payload = await resp.read()
                    status = resp.status
                    if status == 200:
                        latencies.append(time.perf_counter() - t0)
                        if version_of is not None:
                            versions.append((t0 - start, version_of(resp, payload)))
                    else:
                        if status in (429, 503):
                            rejected.append(time.perf_counter() - t0)
                            if "Retry-After" not in resp.headers:
                                missing_retry_after += 1
                        if len(errors) < 10:
                            errors.append(f"HTTP {status}: {payload[:200]!r}")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # counted as status -1
                status = -1
                if len(errors) < 10:
                    errors.append(f"{type(exc).__name__}: {exc}")
            statuses[status] += 1

    if session is not None:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    else:
        async with _session(concurrency, timeout_s) as own:
            await asyncio.gather(*(worker(own) for _ in range(concurrency)))
    return LoadResult(
        sent, statuses, latencies, versions, errors, time.perf_counter() - start, rejected, missing_retry_after
    )


def _session(concurrency: int, timeout_s: float = 30.0) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s))


@dataclasses.dataclass
class GoodputResult:
    capacity: float  # successes/s, closed loop at the capacity concurrency
    served: float  # successes/s while offered ``factor`` x the capacity measured just before
    offered: float  # mean requests/s offered in the overload windows
    statuses: collections.Counter  # of the overload windows
    rounds: list[tuple[float, float]]  # (capacity, served) per round

    @property
    def ratio(self) -> float:
        return self.served / self.capacity if self.capacity > 0 else 0.0


async def measure_goodput(
    url: str,
    bodies: Sequence[bytes],
    *,
    factor: float = 2.0,
    rounds: int = 6,
    window_s: float = 1.5,
    capacity_concurrency: int = 8,
    overload_concurrency: int = 64,
) -> GoodputResult:
    """Goodput under overload: successes/s while offered ``factor`` x the capacity, over the capacity.

    Capacity windows (a closed loop at ``capacity_concurrency``) alternate with overload windows
    (paced at ``factor`` x the capacity of the window just before), and the sums are compared:
    a machine whose speed drifts (other processes, CPU frequency) moves both alike, where one
    capacity run followed by one overload run measures the drift as much as the server.
    """
    cap_ok = cap_s = over_ok = over_s = sent = 0.0
    statuses: collections.Counter = collections.Counter()
    per_round = []
    # one set of connections per side, opened (and the model warmed) before anything is counted:
    # a window that opened 64 connections first would count their setup against the server
    async with _session(capacity_concurrency) as closed_loop, _session(overload_concurrency) as paced:
        warm = await run_load(url, bodies, concurrency=capacity_concurrency, requests=100, session=closed_loop)
        await run_load(url, bodies, concurrency=overload_concurrency, duration_s=0.3, rate=factor * warm.throughput, session=paced)
        for _ in range(rounds):
            cap = await run_load(url, bodies, concurrency=capacity_concurrency, duration_s=window_s, session=closed_loop)
            if cap.failed:
                raise RuntimeError(f"the capacity window failed requests: {dict(cap.statuses)} {cap.errors[:3]}")
            over = await run_load(
                url, bodies, concurrency=overload_concurrency, duration_s=window_s, rate=factor * cap.throughput, session=paced
            )
            cap_ok, cap_s = cap_ok + cap.ok, cap_s + cap.elapsed_s
            over_ok, over_s, sent = over_ok + over.ok, over_s + over.elapsed_s, sent + over.sent
            statuses.update(over.statuses)
            per_round.append((cap.throughput, over.throughput))
    return GoodputResult(cap_ok / cap_s, over_ok / over_s, sent / over_s, statuses, per_round)


def header_version(resp: aiohttp.ClientResponse, _payload: bytes) -> str:
    return resp.headers.get("X-Model-Version", "?")
