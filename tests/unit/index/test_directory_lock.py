"""The index directory's writer lock: one writer across processes, re-entrant within a
thread, optionally waited for."""

from __future__ import annotations

import threading

import pytest

from shopsearch.errors import IndexLockedError
from shopsearch.index.directory import IndexDirectory


def test_the_writer_lock_is_reentrant_and_exclusive(tmp_path):
    mine, other = IndexDirectory(tmp_path), IndexDirectory(tmp_path)  # e.g. two processes
    with mine.writer_lock():
        with mine.writer_lock():  # nested: the same holder
            pass
        with pytest.raises(IndexLockedError, match="another process is writing"):
            with other.writer_lock():
                pass
        with pytest.raises(IndexLockedError):
            with other.writer_lock(wait_s=0.05):
                pass
    with other.writer_lock():
        pass


def test_a_writer_can_wait_for_the_lock(tmp_path):
    mine, other = IndexDirectory(tmp_path), IndexDirectory(tmp_path)
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:
        with mine.writer_lock():
            holding.set()
            release.wait(30)
            order.append("first")

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(30)
    release.set()
    with other.writer_lock(wait_s=30):
        order.append("second")
    thread.join()
    assert order == ["first", "second"]
