"""What the worker processes of one server share: token buckets in a memory-mapped file
(exact across processes), the per-client buckets of public keys (a bounded table), and the
reload marker."""

from __future__ import annotations

import multiprocessing

import pytest

from shopsearch.serve.ratelimit import ClientRateLimiter, Limit, RateLimiter, SharedRateLimiter
from shopsearch.serve.shared import ReloadMarker, SharedDir


def _take_all(path: str, tries: int, results) -> None:
    limiter = SharedRateLimiter(path)
    results.put(sum(1 for _ in range(tries) if limiter.acquire("key", 1e-9, 25) == 0.0))
    limiter.close()


def _total_in_three_processes(target, path: str, tries: int) -> int:  # noqa: ANN001
    """Run ``target(path, tries, results)`` in 3 spawned processes; the sum of their counts."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=target, args=(path, tries, results)) for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    return sum(results.get(timeout=10) for _ in processes)


def test_shared_buckets_hold_across_processes(tmp_path):
    total = _total_in_three_processes(_take_all, str(tmp_path / "rate-limits"), 40)
    assert total == 25  # one burst in all


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


CLIENT, ADDRESS = Limit(1.0, 5), Limit(10.0, 20)


def _take_client(path: str, tries: int, results) -> None:
    limiter = ClientRateLimiter(path, slots=1024)
    allowed = sum(
        1
        for _ in range(tries)
        if limiter.acquire("10.0.0.1", "u1", Limit(1e-9, 25), Limit(1e-9, 20))[0] == 0
    )
    results.put(allowed)
    limiter.close()


def test_client_buckets_hold_across_processes(tmp_path):
    total = _total_in_three_processes(_take_client, str(tmp_path / "client-limits"), 15)
    assert total == 20  # the address's burst, once


def test_client_buckets_behave_like_token_buckets():
    clients, local = ClientRateLimiter(None, slots=64), RateLimiter()
    for now in (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0):
        wait, bucket = clients.acquire("10.0.0.9", "u", CLIENT, ADDRESS, now=now)
        assert wait == pytest.approx(local.acquire("u", CLIENT.rate, CLIENT.burst, now=now))
        assert bucket == ("client" if wait else "")


def test_a_looping_client_spends_only_its_own_allowance():
    limiter = ClientRateLimiter(None, slots=256)
    refused = [limiter.acquire("10.0.0.1", "loop", CLIENT, ADDRESS, now=0.0)[1] for _ in range(500)]
    assert refused.count("") == 5 and set(refused[5:]) == {"client"}
    # another shopper behind the same address, and another address: untouched
    for address, shopper in (("10.0.0.1", "other"), ("10.0.0.2", "loop")):
        assert all(
            limiter.acquire(address, shopper, CLIENT, ADDRESS, now=0.0) == (0.0, "")
            for _ in range(5)
        )


def test_inventing_shopper_ids_hits_the_address_limit():
    limiter = ClientRateLimiter(None, slots=256)
    results = [
        limiter.acquire("10.0.0.1", f"fake-{i}", CLIENT, ADDRESS, now=0.0) for i in range(50)
    ]
    assert [bucket for _, bucket in results].count("") == 20
    assert {bucket for _, bucket in results[20:]} == {"address"}
    assert results[20][0] == pytest.approx(0.1)  # the address refills at 10/s


def test_the_table_stays_bounded_and_busy_clients_stay_limited(tmp_path):
    limiter = ClientRateLimiter(tmp_path / "client-limits", slots=1024)
    size = (tmp_path / "client-limits").stat().st_size
    for _ in range(5):  # a busy client empties its bucket...
        limiter.acquire("10.0.0.1", "busy", CLIENT, ADDRESS, now=0.0)
    for i in range(20_000):  # ...then 20,000 others (1,000 addresses) pass through, briefly
        limiter.acquire(f"10.1.{i // 20 // 250}.{i // 20 % 250}", f"s{i}", CLIENT, ADDRESS, now=0.5)
    assert (tmp_path / "client-limits").stat().st_size == size
    # the busy client's bucket was never full, so never given away: still limited
    assert limiter.acquire("10.0.0.1", "busy", CLIENT, ADDRESS, now=0.5)[1] == "client"
    limiter.close()
