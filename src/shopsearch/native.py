"""Native libraries whose load order matters: the one place that decides it.

usearch's wheels (every release from 2.16 to 2.26.6 checked) link a private copy of
libstdc++ statically and export its symbols, 214 of them ``STB_GNU_UNIQUE`` (the ids of the
locale facets). The dynamic linker keeps one definition of a unique symbol per process, the
first one loaded. When usearch loads first, the system libstdc++ that ONNX Runtime brings in
afterwards takes usearch's facet ids, and ONNX Runtime's module initialisation dies with
SIGSEGV in ``std::codecvt<char16_t>::do_unshift`` (``python -c "import usearch.index; import
onnxruntime"``). Loaded the other way round, usearch binds to the system's ids and both work.
Pinning another usearch release does not help (all of them export these symbols), so the
order is fixed here:

- ``import shopsearch`` loads ONNX Runtime first (about 35 ms on top of numpy);
- every use of usearch goes through :func:`usearch_index`, every use of ONNX Runtime through
  :func:`onnxruntime`, and both make sure of the order;
- where usearch was already loaded by someone else before ONNX Runtime, :func:`onnxruntime`
  raises :class:`~shopsearch.errors.NativeLibraryError` instead of letting the process crash.

Only ONNX Runtime is affected: torch, LightGBM, tokenizers, pyarrow, SciPy, sqlite3 and the
rest of the dependencies import fine after usearch (checked one by one).
"""

from __future__ import annotations

import sys
from types import ModuleType

from shopsearch.errors import MissingDependencyError, NativeLibraryError

__all__ = ["load_in_order", "onnxruntime", "usearch_index"]

_USEARCH_NATIVE = "usearch.compiled"


def _usearch_loaded_without_onnxruntime() -> bool:
    return _USEARCH_NATIVE in sys.modules and "onnxruntime" not in sys.modules


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, imported safely (see the module docstring)."""
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    if _usearch_loaded_without_onnxruntime():
        raise NativeLibraryError(
            "usearch was imported before onnxruntime in this process; importing onnxruntime "
            "now would crash it (both ship libstdc++ symbols that collide). Import shopsearch "
            "(or onnxruntime) before usearch."
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnxruntime", "onnx") from exc
    return ort


def usearch_index() -> ModuleType:
    """The ``usearch.index`` module, imported after ONNX Runtime."""
    if "onnxruntime" not in sys.modules:
        try:
            onnxruntime()
        except MissingDependencyError:
            pass  # no ONNX Runtime in this process: nothing can collide with usearch
    import usearch.index

    return usearch.index


def load_in_order() -> None:
    """Import ONNX Runtime now, so that a later ``import usearch`` anywhere is safe.

    Runs when this module is first imported, which ``shopsearch/__init__.py`` does before
    anything else. Does nothing when ONNX Runtime is missing (the
    commands that need it say which extra to install) or when usearch already came first
    (:func:`onnxruntime` raises a clear error if ONNX Runtime is needed later).
    """
    if "onnxruntime" in sys.modules or _usearch_loaded_without_onnxruntime():
        return
    try:
        onnxruntime()
    except MissingDependencyError:
        pass


load_in_order()
