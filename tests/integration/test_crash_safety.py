"""SIGKILL a writer midway: the index directory still loads with its previous contents."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from catalog_support import write_variant_catalog

from shopsearch.index.directory import LOCK_NAME, SNAPSHOTS, IndexDirectory
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.pipeline import SearchPipeline

# Products: about a minute of encoding on 2 cores, so the kill 1 s into the write lands
# midway even on a machine many times faster (the writer is killed, so the size costs little).
BIG = 20_000


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    return write_variant_catalog(BIG, tmp_path_factory.mktemp("big") / "catalog.jsonl.gz")


def _snapshot_of(path, encoder):
    with SearchPipeline.open(path, encoder=encoder) as pipeline:
        ids = sorted(pipeline.snapshot.id_to_row)
        hits = [(h.product_id, h.score) for h in pipeline.search("ugg slippers", k=5).hits]
        return ids, hits, pipeline.store.count()


def _kill_midway(args, index_dir):
    """Start a writer, wait until it holds the index lock, let it work, then SIGKILL it."""
    (index_dir / LOCK_NAME).unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopsearch", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 240
    while not (index_dir / LOCK_NAME).exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the writer never started"
        time.sleep(0.05)
    time.sleep(1.0)  # inside the write: encoding thousands of products takes several seconds
    assert proc.poll() is None, "the writer finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("command", ["index", "upsert"])
def test_sigkill_midway_leaves_previous_contents(
    command, tmp_path, tiny_index_dir, big_catalog, encoder
):
    index_dir = tmp_path / "index"
    shutil.copytree(tiny_index_dir, index_dir)
    before = _snapshot_of(index_dir, encoder)
    args = (
        ["index", str(big_catalog), "--out", str(index_dir)]
        if command == "index"
        else ["upsert", str(index_dir), str(big_catalog)]
    )
    _kill_midway(args, index_dir)
    assert _snapshot_of(index_dir, encoder) == before
    # The next writer succeeds and clears what the killed one left behind.
    with SearchPipeline.open(index_dir, encoder=encoder) as pipeline:
        pipeline.delete([before[0][0]])
        assert len(pipeline) == len(before[0]) - 1
    assert [p.name for p in (index_dir / SNAPSHOTS).iterdir()] == [pipeline.snapshot.name]


def test_a_saved_but_uncommitted_snapshot_is_ignored(tmp_path, tiny_index_dir, encoder):
    """The crash window between writing a snapshot and committing the catalog."""
    index_dir = tmp_path / "index"
    shutil.copytree(tiny_index_dir, index_dir)
    before = _snapshot_of(index_dir, encoder)
    directory = IndexDirectory(index_dir)
    with directory.open_store() as store:
        snapshot = directory.load_snapshot(store)
    snapshot.apply([], [before[0][0], before[0][1]], encoder)
    directory._save_snapshot(snapshot)  # ... and the process dies before store.commit()
    assert _snapshot_of(index_dir, encoder) == before
    with directory.open_store() as store:
        assert isinstance(directory.load_snapshot(store), IndexSnapshot)
