"""What the worker processes of one server share: token buckets in a memory-mapped file
(exact across processes) and the reload marker."""

from __future__ import annotations

import multiprocessing

from shopsearch.serve.ratelimit import RateLimiter, SharedRateLimiter
from shopsearch.serve.shared import ReloadMarker, SharedDir


def _take_all(path: str, tries: int, results) -> None:
    limiter = SharedRateLimiter(path)
    results.put(sum(1 for _ in range(tries) if limiter.acquire("key", 1e-9, 25) == 0.0))
    limiter.close()


def test_shared_buckets_hold_across_processes(tmp_path):
    path = str(tmp_path / "rate-limits")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_take_all, args=(path, 40, results)) for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert sum(results.get(timeout=10) for _ in processes) == 25  # one burst in all


def test_shared_buckets_behave_like_local_ones(tmp_path):
    shared, local = SharedRateLimiter(tmp_path / "rate-limits"), RateLimiter()
    for now in (0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0):
        for name in ("a", "b"):
            assert shared.acquire(name, 1.0, 2, now=now) == local.acquire(name, 1.0, 2, now=now)
    again = SharedRateLimiter(tmp_path / "rate-limits")  # another process's view
    assert again.acquire("a", 1.0, 2, now=3.0) == local.acquire("a", 1.0, 2, now=3.0)
    shared.close()
    again.close()


def test_the_reload_marker_counts_requests(tmp_path):
    shared = SharedDir.create(tmp_path / "shared")
    assert shared.metrics.is_dir()
    marker, watcher = shared.reload_marker, ReloadMarker(shared.path / "reload")
    assert watcher.count() == 0
    first = marker.request()
    assert watcher.count() == first > 0
    assert marker.request() > first
