"""Prometheus metrics of one app, in its own registry (several apps can live in a process).

Names: ``shopsearch_http_requests_total{method,route,status}``,
``shopsearch_http_request_duration_seconds{method,route}`` (histogram),
``shopsearch_http_errors_total{route,code}``, ``shopsearch_rate_limited_total{key}``,
``shopsearch_catalog_products``, ``shopsearch_events_stored``, ``shopsearch_queries_logged_total``,
``shopsearch_query_log_pending``, ``shopsearch_query_cache_hits`` / ``_misses``,
``shopsearch_reloads_total``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

#: Latency buckets (seconds): searches take ~10 ms, writes up to seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's metrics; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        disable_created_metrics()  # process-wide: no *_created series (noise for Prometheus)
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
        self.queries_logged = Counter(
            "shopsearch_queries_logged",
            "Search queries written to the event store's query log",
            registry=r,
        )
        self.reloads = Counter(
            "shopsearch_reloads", "Index reloads (POST /v1/admin/reload, SIGHUP)", registry=r
        )
        self.catalog_products = Gauge(
            "shopsearch_catalog_products", "Products in the served index", registry=r
        )
        self.events_stored = Gauge(
            "shopsearch_events_stored", "Event records in the event store", registry=r
        )
        self.query_cache_hits = Gauge(
            "shopsearch_query_cache_hits",
            "Query vectors served from the query-embedding cache (since the last reload "
            "that changed the encoder)",
            registry=r,
        )
        self.query_cache_misses = Gauge(
            "shopsearch_query_cache_misses",
            "Query vectors computed by the encoder",
            registry=r,
        )
        self.query_log_pending = Gauge(
            "shopsearch_query_log_pending",
            "Logged queries waiting to be written to the event store",
            registry=r,
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
        """Gauges read at scrape time."""
        self.catalog_products.set_function(products)
        self.events_stored.set_function(events)
        self.query_log_pending.set_function(pending)
        self.query_cache_hits.set_function(cache_hits)
        self.query_cache_misses.set_function(cache_misses)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
