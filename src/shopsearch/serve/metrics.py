"""Prometheus metrics of one app, in its own registry (several apps can live in a process).

Names: ``shopsearch_http_requests_total{method,route,status}``,
``shopsearch_http_request_duration_seconds{method,route}`` (histogram),
``shopsearch_http_errors_total{route,code}``, ``shopsearch_rate_limited_total{key}``,
``shopsearch_client_rate_limited_total{key,bucket}``,
``shopsearch_catalog_products``, ``shopsearch_events_stored``, ``shopsearch_queries_logged_total``,
``shopsearch_query_log_pending``, ``shopsearch_query_cache_hits`` / ``_misses``,
``shopsearch_reloads_total``.

With worker processes (``serve --workers N``) the metrics live in prometheus_client's
multi-process files (``multiprocess_dir``, the ``PROMETHEUS_MULTIPROC_DIR`` every worker
inherits) and ``/metrics`` adds up every worker's: counters and histograms are summed
(workers that exited included), ``query_log_pending`` and the query cache gauges are summed
over live workers, ``catalog_products`` and ``events_stored`` are the most recent value any
worker set (``events_stored`` is recounted by the worker that answers the scrape).
Each worker pushes its per-worker gauges with :meth:`Metrics.sample` (every half second).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

#: Latency buckets (seconds): searches take ~10 ms, writes up to seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's metrics; :meth:`render` is the ``/metrics`` body. ``multiprocess_dir``:
    the worker processes' shared directory (it must also be ``PROMETHEUS_MULTIPROC_DIR``
    when prometheus_client is imported)."""

    def __init__(self, multiprocess_dir: str | os.PathLike[str] | None = None) -> None:
        disable_created_metrics()  # process-wide: no *_created series (noise for Prometheus)
        self.multiprocess_dir = None if multiprocess_dir is None else Path(multiprocess_dir)
        self._sources: dict[Gauge, Callable[[], float]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "shopsearch_http_requests",
            "HTTP requests by route template, method and status",
            ("method", "route", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "shopsearch_http_request_duration_seconds",
            "HTTP request latency by route template",
            ("method", "route"),
            buckets=BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "shopsearch_http_errors",
            "Error responses (4xx and 5xx) by route template and error code",
            ("route", "code"),
            registry=r,
        )
        self.rate_limited = Counter(
            "shopsearch_rate_limited",
            "Requests refused by the per-key rate limit",
            ("key",),
            registry=r,
        )
        self.client_rate_limited = Counter(
            "shopsearch_client_rate_limited",
            "Requests with a public key refused by a per-client limit (bucket: client, address)",
            ("key", "bucket"),
            registry=r,
        )
        self.queries_logged = Counter(
            "shopsearch_queries_logged",
            "Search queries written to the event store's query log",
            registry=r,
        )
        self.reloads = Counter(
            "shopsearch_reloads", "Index reloads (POST /v1/admin/reload, SIGHUP)", registry=r
        )
        self.catalog_products = Gauge(
            "shopsearch_catalog_products",
            "Products in the served index",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.events_stored = Gauge(
            "shopsearch_events_stored",
            "Event records in the event store",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.query_cache_hits = Gauge(
            "shopsearch_query_cache_hits",
            "Query vectors served from the query-embedding cache (since the last reload "
            "that changed the encoder)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.query_cache_misses = Gauge(
            "shopsearch_query_cache_misses",
            "Query vectors computed by the encoder",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.query_log_pending = Gauge(
            "shopsearch_query_log_pending",
            "Logged queries waiting to be written to the event store",
            registry=r,
            multiprocess_mode="livesum",
        )

    def bind(
        self,
        *,
        products: Callable[[], float],
        events: Callable[[], float],
        pending: Callable[[], float],
        cache_hits: Callable[[], float],
        cache_misses: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time (and, with worker processes, by :meth:`sample`)."""
        self._sources = {
            self.catalog_products: products,
            self.events_stored: events,
            self.query_log_pending: pending,
            self.query_cache_hits: cache_hits,
            self.query_cache_misses: cache_misses,
        }
        if self.multiprocess_dir is None:
            for gauge, source in self._sources.items():
                gauge.set_function(source)

    def sample(self, *, events: bool = False) -> None:
        """Write this process's gauges to its multi-process files (``events``: also the
        event count, whose source may be slow). Nothing to do in a single process."""
        if self.multiprocess_dir is None:
            return
        for gauge, source in self._sources.items():
            if events or gauge is not self.events_stored:
                gauge.set(source())

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self.sample(events=True)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry)

    def process_exited(self) -> None:
        """Drop this process's live gauges from the aggregate (at a graceful exit)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))
