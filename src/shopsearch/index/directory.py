"""The on-disk layout of an index and its crash-safe commit protocol.

::

    DIR/
      catalog.sqlite        products + meta (SQLite, WAL): the single commit point
      snapshots/00000003/   config.json, lexical/, vectors/, columns.json, rows.json
      .lock                 held by the one writer

A write (full build or incremental change) first saves a complete new snapshot under a
temporary name, fsyncs it and renames it into place, then commits the products together
with ``meta.snapshot = <new name>`` in one SQLite transaction. Killed before that commit,
the directory still names the old snapshot and holds the old products; killed after, the
new ones. Snapshots nobody names are removed by the next writer.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shopsearch.catalog.schema import Product
from shopsearch.catalog.store import CatalogStore
from shopsearch.errors import IndexLockedError, IndexNotFoundError
from shopsearch.index.config import IndexConfig
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.models.encoders import Encoder
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.text.vocabulary import Vocabulary

DB_NAME = "catalog.sqlite"
SNAPSHOTS = "snapshots"
LOCK_NAME = ".lock"


class IndexDirectory:
    """One index directory: open its store, load its snapshot, commit new states."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_owner: int | None = None  # the thread holding writer_lock() through us

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    def exists(self) -> bool:
        if not self.db_path.is_file():
            return False
        with CatalogStore(self.db_path, readonly=True) as store:
            try:
                return store.meta("snapshot") is not None
            except Exception:  # noqa: BLE001 - an empty or foreign file is "no index"
                return False

    def open_store(self, *, readonly: bool = False) -> CatalogStore:
        if not self.exists():
            raise IndexNotFoundError(
                f"no shopsearch index at {self.path}: build one with "
                f"`shopsearch index CATALOG --out {self.path}`"
            )
        return CatalogStore(self.db_path, readonly=readonly)

    def load_snapshot(self, store: CatalogStore) -> IndexSnapshot:
        name = store.meta("snapshot")
        if name is None:
            raise IndexNotFoundError(f"no snapshot recorded in {self.db_path}")
        snapshot = IndexSnapshot.load(self.path / SNAPSHOTS / name)
        snapshot.name = name
        return _with_vocabulary(snapshot, store)

    def load_newer_snapshot(
        self, store: CatalogStore, current: str | None, *, attempts: int = 5
    ) -> IndexSnapshot | None:
        """The committed snapshot when it is not ``current`` (``None`` when it is). A
        snapshot replaced (and removed) by a newer write while loading is retried up to
        ``attempts`` times, then :class:`IndexLockedError`."""
        for _ in range(attempts):
            name = store.meta("snapshot")
            if name is None or name == current:
                return None
            try:
                snapshot = IndexSnapshot.load(self.path / SNAPSHOTS / name)
            except FileNotFoundError:  # replaced by a newer write meanwhile
                continue
            snapshot.name = name
            return _with_vocabulary(snapshot, store)
        raise IndexLockedError(f"the index at {self.path} keeps changing: retry")

    @contextmanager
    def writer_lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Held by one writer at a time, across processes (an ``flock`` on ``DIR/.lock``).

        Waits up to ``wait_s`` seconds for another holder, then raises
        :class:`IndexLockedError`. Re-entrant: a thread that holds it through this object
        may take it again (nested writes).
        """
        if self._lock_owner == threading.get_ident():
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        with open(self.path / LOCK_NAME, "w") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexLockedError(
                            f"another process is writing the index at {self.path}"
                        ) from None
                    time.sleep(0.01)
            self._lock_owner = threading.get_ident()
            try:
                yield
            finally:
                self._lock_owner = None
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _next_snapshot_name(self) -> str:
        existing = [int(p.name) for p in (self.path / SNAPSHOTS).glob("*") if p.name.isdigit()]
        return f"{max(existing, default=0) + 1:08d}"

    def _save_snapshot(self, snapshot: IndexSnapshot) -> str:
        """Save under a temporary name, then rename into place (atomic on POSIX)."""
        snapshots = self.path / SNAPSHOTS
        snapshots.mkdir(parents=True, exist_ok=True)
        name = self._next_snapshot_name()
        tmp = snapshots / f"tmp-{uuid.uuid4().hex}"
        snapshot.save(tmp)
        os.replace(tmp, snapshots / name)
        snapshot.name = name
        fd = os.open(snapshots, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return name

    def _remove_unreferenced(self, keep: str) -> None:
        for path in (self.path / SNAPSHOTS).glob("*"):
            if path.name != keep:
                shutil.rmtree(path, ignore_errors=True)

    def build(
        self,
        products: Sequence[Product],
        encoder: Encoder,
        config: IndexConfig,
        progress: Progress = NULL_PROGRESS,
    ) -> IndexSnapshot:
        """Index ``products`` from scratch, replacing whatever the directory held."""
        with self.writer_lock():
            snapshot = IndexSnapshot.empty(config, encoder.dim)
            snapshot.apply(products, (), encoder, progress)
            name = self._save_snapshot(snapshot)
            with CatalogStore(self.db_path) as store:
                with progress.stage("Committing catalog", 1) as advance:
                    store.commit(upserts=products, meta={"snapshot": name}, replace_all=True)
                    advance(1)
            self._remove_unreferenced(keep=name)
        return snapshot

    def apply(
        self,
        snapshot: IndexSnapshot,
        upserts: Sequence[Product],
        deletes: Sequence[str],
        encoder: Encoder,
        progress: Progress = NULL_PROGRESS,
    ) -> IndexSnapshot:
        """Upsert and delete incrementally on top of ``snapshot`` (which is modified).

        ``snapshot`` must be the directory's current one; on any error it must be dropped
        and reloaded, since it may hold changes that were never committed.
        """
        with self.writer_lock():
            with self.open_store() as store:
                if store.meta("snapshot") != snapshot.name:
                    raise IndexLockedError(
                        f"the index at {self.path} changed on disk since it was loaded: reopen it"
                    )
                known = [p.id for p in upserts] + list(deletes)
                replaced = store.get_many([i for i in known if i in snapshot.id_to_row])
                snapshot.apply(upserts, deletes, encoder, progress, list(replaced.values()))
                name = self._save_snapshot(snapshot)
                store.commit(upserts=upserts, deletes=deletes, meta={"snapshot": name})
            self._remove_unreferenced(keep=name)
        return snapshot


def _with_vocabulary(snapshot: IndexSnapshot, store: CatalogStore) -> IndexSnapshot:
    """``snapshot`` with its vocabulary, counted from the catalog when its files predate
    vocabularies (the next write saves it)."""
    if snapshot.vocabulary is None:
        vocabulary = Vocabulary()
        vocabulary.add(store.iter_products())
        snapshot.vocabulary = vocabulary
    return snapshot
