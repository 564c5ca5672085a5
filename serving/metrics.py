"""Prometheus metrics owned by the server, labelled by model and version.

One registry per server (not the process-global default), so several servers in one process
(tests, the benchmark) do not mix their counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the REST adapter)

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "textops_serving_requests_total",
            "Requests by model, version, protocol and status (HTTP-style code).",
            ["model", "version", "protocol", "status"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "textops_serving_stage_latency_seconds",
            "Latency per stage: queue (waiting for a batch slot), batch (batch assembly and hand-off "
            "to the model thread), inference (the model call), total (the request in the server).",
            ["model", "version", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "textops_serving_batch_size",
            "Texts per model call.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "textops_serving_queue_texts", "Texts waiting for a model call.", ["model"], registry=r
        )
        self.loaded_versions = Gauge(
            "textops_serving_loaded_versions",
            "1 for each version being served.",
            ["model", "version"],
            registry=r,
        )
        self.load_failures = Counter(
            "textops_serving_load_failures_total",
            "Versions that failed to load or warm up (never served).",
            ["model", "version"],
            registry=r,
        )
        self.loads = Counter(
            "textops_serving_loads_total", "Versions loaded, warmed up and swapped in.", ["model"], registry=r
        )
        self.overload_rejections = Counter(
            "textops_serving_overload_rejections_total",
            "Requests refused at once because the model's queue was full.",
            ["model", "protocol"],
            registry=r,
        )
        self.log_written = Counter(
            "textops_prediction_log_records_total", "Prediction-log records written.", registry=r
        )
        self.log_dropped = Counter(
            "textops_prediction_log_dropped_total",
            "Prediction-log records dropped (writer queue full, or a write error).",
            ["reason"],
            registry=r,
        )
        self.log_writer_errors = Counter(
            "textops_prediction_log_writer_errors_total",
            "Failures of the prediction-log writer (logged with their cause; the writer carries on).",
            registry=r,
        )
        self.log_sampled_out = Counter(
            "textops_prediction_log_sampled_out_total",
            "Predictions not logged because of the sampling rate (by design, not a loss).",
            registry=r,
        )

        self.open_connections = Gauge("textops_serving_open_connections", "Open HTTP connections.", registry=r)
        self.connections_refused = Counter(
            "textops_serving_connections_refused_total",
            "HTTP connections answered 503 and closed because connections.max_connections were open.",
            registry=r,
        )
        self.connection_timeouts = Counter(
            "textops_serving_connection_timeouts_total",
            "HTTP requests cut by a read timeout (header: connections.header_timeout_s, body: body_timeout_s).",
            ["kind"],
            registry=r,
        )
        self.version_not_loaded = Gauge(
            "textops_serving_version_not_loaded",
            "1 for each version directory that is on disk but not served, labelled with why "
            "(settling, incomplete, unreadable, load_failed, retrying).",
            ["model", "version", "reason"],
            registry=r,
        )
        self.invalid_version_dirs = Gauge(
            "textops_serving_invalid_version_dirs",
            "Directories in a model's folder whose names are not versions (ASCII digits within int64); skipped.",
            ["model"],
            registry=r,
        )
        self.load_attempt_failures = Counter(
            "textops_serving_load_attempt_failures_total",
            "Failed load attempts, retries included (load_failures_total counts versions given up on).",
            ["model", "version"],
            registry=r,
        )

        # -- the shared scheduler: pool, queues by priority, deadlines, instances ------------------
        self.pool_capacity = Gauge(
            "textops_serving_pool_capacity", "Count of each resource in the pool model executions draw on.", ["resource"], registry=r
        )
        self.pool_in_use = Gauge(
            "textops_serving_pool_in_use", "Units of each pool resource held by running model executions.", ["resource"], registry=r
        )
        self.executions = Counter(
            "textops_serving_executions_total", "Model calls (batches) run, by model and priority.", ["model", "priority"], registry=r
        )
        self.queue_wait = Histogram(
            "textops_serving_queue_wait_seconds",
            "Time a request waited in its model's queue before its batch started, by model and priority.",
            ["model", "priority"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.oldest_wait = Gauge(
            "textops_serving_queue_oldest_wait_seconds",
            "Age of the oldest request waiting for each model (0: none waiting); sustained growth means starvation.",
            ["model"],
            registry=r,
        )
        self.deadline_expired = Counter(
            "textops_serving_deadline_expired_total",
            "Requests answered DeadlineExceeded (504) because their deadline passed while queued; never run.",
            ["model"],
            registry=r,
        )
        self.instances = Gauge(
            "textops_serving_instances", "Model instances (executions allowed at once) per model; 0 while unloaded.", ["model"], registry=r
        )
        self.instance_changes = Counter(
            "textops_serving_instance_changes_total",
            "Instance count changes: up (backlog), down (idle), unload (idle past unload_after_s), reload (on demand).",
            ["model", "direction"],
            registry=r,
        )
        self.inflight = Gauge(
            "textops_serving_inflight_requests", "Requests admitted and not yet answered, per model (the HPA's signal).", ["model"], registry=r
        )

        self._children: dict = {}

    def child(self, metric, *labels):
        """``metric.labels(*labels)``, cached: the hot path looks each series up once (a labels()
        call takes a lock and builds a key; on the request path it was most of the metrics cost).
        Only for series that are never removed (counters and histograms)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
