"""Running the server: one process, or ``workers`` processes (uvicorn's multi-process mode).

``run_server(index_dir, settings)`` is what ``shopsearch serve`` does.

* **One process** (``workers = 1``): the app is built here, then served by uvicorn.
* **Worker processes** (``workers = N > 1``): this process (the parent) binds the socket,
  creates the shared directory (:mod:`shopsearch.serve.shared`: reload marker, shared rate
  limits, Prometheus multi-process files) in a temporary directory, generates the
  storefront key (handed over in the environment, never written to disk), and starts N
  workers with uvicorn's supervisor, which restarts any that dies. Each worker builds the
  app with :func:`worker_app` (uvicorn's app factory) from the environment set here.
  SIGHUP to the parent asks every worker to reload; SIGTERM (or SIGINT) stops the workers
  gracefully (each flushes its query log) and the parent exits with status 0.

Searches are CPU-bound Python, so a process serves about one core's worth (the GIL):
``workers = 2`` suits a 2-core machine. Native thread pools are limited to one thread per
process (OpenBLAS/OpenMP here, ONNX Runtime sessions in :mod:`shopsearch.models.onnx`):
parallelism comes from the workers and their concurrent searches, not from inside a
matrix product.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from shopsearch.serve.settings import ServeSettings
from shopsearch.serve.shared import SharedDir

__all__ = ["run_server", "worker_app"]

logger = logging.getLogger("shopsearch.serve")

#: On SIGTERM, how long requests in flight may take before the server stops anyway.
GRACEFUL_SHUTDOWN_S = 30
#: What the parent hands its workers (not SHOPSEARCH_SERVE_*: those are settings).
ENV_INDEX = "SHOPSEARCH_WORKER_INDEX"
ENV_SETTINGS = "SHOPSEARCH_WORKER_SETTINGS"
ENV_SHARED = "SHOPSEARCH_WORKER_SHARED"
ENV_STOREFRONT_KEY = "SHOPSEARCH_WORKER_STOREFRONT_KEY"
#: Native thread pools sized to one thread (set before numpy loads in a worker).
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_server(index_dir: str | os.PathLike[str], settings: ServeSettings) -> int:
    """Serve until SIGTERM or SIGINT; the exit status (0 after a graceful shutdown)."""
    from shopsearch.serve.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.workers == 1:
        return _serve_one(Path(index_dir), settings)
    return _serve_workers(Path(index_dir), settings)


def _config(app: Any, settings: ServeSettings, **options: Any) -> Any:
    """uvicorn's configuration: our connection layer (head limits, read timeouts: see
    :mod:`shopsearch.serve.protocol`), keep-alive timeout, trusted proxies."""
    import uvicorn

    from shopsearch.serve.protocol import ConnectionLimits, protocol_factory

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # (a factory where uvicorn's hints say a class; it only ever calls it)
        http=protocol_factory(ConnectionLimits.from_settings(settings)),  # type: ignore[arg-type]
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  # (call_later)
        forwarded_allow_ips=list(settings.trusted_proxies),
        log_config=None,  # ours: JSON lines
        access_log=False,  # ours has the route template and the key name
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **options,
    )


def _serve_one(index_dir: Path, settings: ServeSettings) -> int:
    import uvicorn

    from shopsearch.serve.app import create_app

    _limit_native_threads()
    started = time.perf_counter()
    app = create_app(index_dir, settings)
    _freeze_heap(app)
    _log_serving(app, index_dir, settings, started)
    _reload_on_sighup(app.state.shopsearch)
    server = uvicorn.Server(_config(app, settings))
    _exit_zero_after_graceful_shutdown()
    server.run()
    return 0


def _serve_workers(index_dir: Path, settings: ServeSettings) -> int:
    from uvicorn.supervisors.multiprocess import Multiprocess

    from shopsearch.serve.keys import generate_key

    class Supervisor(Multiprocess):  # type: ignore[misc]
        def handle_hup(self) -> None:  # uvicorn would restart every worker
            logger.info("reload requested (SIGHUP): the workers reload")
            shared.reload_marker.request()

    with tempfile.TemporaryDirectory(prefix="shopsearch-serve-") as tmp:
        shared = SharedDir.create(tmp)
        os.environ.update(
            {
                ENV_INDEX: str(index_dir.resolve()),
                ENV_SETTINGS: settings.to_json(),
                ENV_SHARED: str(shared.path),
                ENV_STOREFRONT_KEY: generate_key(),
                "PROMETHEUS_MULTIPROC_DIR": str(shared.metrics),
            }
        )
        for name in THREAD_ENV:
            os.environ.setdefault(name, "1")
        config = _config(
            "shopsearch.serve.workers:worker_app", settings, factory=True, workers=settings.workers
        )
        socket = config.bind_socket()
        logger.info(
            "starting workers",
            extra={
                "fields": {
                    "index": str(index_dir),
                    "workers": settings.workers,
                    "host": settings.host,
                    "port": socket.getsockname()[1],
                    "shared": str(shared.path),
                }
            },
        )
        target = {}  # older uvicorn versions want the workers' function
        if "target" in inspect.signature(Multiprocess.__init__).parameters:
            import uvicorn

            target = {"target": uvicorn.Server(config).run}
        Supervisor(config, sockets=[socket], **target).run()
    return 0


def worker_app() -> Any:
    """uvicorn's app factory in a worker process: the app its parent described in the
    environment (index, settings, shared directory, storefront key)."""
    from shopsearch.serve.app import create_app
    from shopsearch.serve.logs import configure_logging

    started = time.perf_counter()
    settings = ServeSettings.from_json(os.environ[ENV_SETTINGS])
    configure_logging(settings.log_level)
    # SIGHUP is the parent's: sent to the whole process group, it must not kill a worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    index_dir = Path(os.environ[ENV_INDEX])
    app = create_app(
        index_dir,
        settings,
        storefront_key=os.environ[ENV_STOREFRONT_KEY],
        shared=SharedDir(Path(os.environ[ENV_SHARED])),
    )
    _freeze_heap(app)
    _log_serving(app, index_dir, settings, started)
    return app


def _log_serving(app: Any, index_dir: Path, settings: ServeSettings, started: float) -> None:
    from shopsearch.serve.keys import KeyFile

    state = app.state.shopsearch
    if not KeyFile(index_dir).load():
        logger.warning(
            "no API keys yet: only the storefront page can search; create one with "
            f"`shopsearch keys create {index_dir} --name NAME --scopes search`"
        )
    logger.info(
        "serving",
        extra={
            "fields": {
                "index": str(index_dir),
                "products": len(state.current.pipeline),
                "pipeline": state.current.default_pipeline,
                "host": settings.host,
                "port": settings.port,
                "pid": os.getpid(),
                "startup_s": round(time.perf_counter() - started, 2),
            }
        },
    )


def _freeze_heap(app: Any) -> None:
    """Keep the loaded index out of the garbage collector's full collections (a ~0.3 s
    pause each); see :mod:`shopsearch.serve.state`."""
    gc.collect()
    gc.freeze()
    app.state.shopsearch.freeze_heap = True


def _limit_native_threads() -> None:
    """One OpenBLAS/OpenMP thread in this process (numpy is loaded already: threadpoolctl,
    when installed; worker processes get the environment variables instead)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def _exit_zero_after_graceful_shutdown() -> None:
    """uvicorn re-raises the signal that stopped it, once shut down, with the handlers that
    were there before it ran: make those no-ops, so the process then exits with status 0."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: None)


def _reload_on_sighup(state: Any) -> None:
    """SIGHUP: reload the index on a helper thread (the handler itself must return fast)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return

    def reload() -> None:
        try:
            state.reload()
            logger.info("reloaded on SIGHUP")
        except Exception:  # noqa: BLE001 - keep serving the old generation
            logger.exception("reload on SIGHUP failed; still serving the previous index")

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=reload, name="shopsearch-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, handler)
