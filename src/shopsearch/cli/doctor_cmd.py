"""``shopsearch doctor``: what a bug report needs, in one command.

CPU model and the instruction sets that decide which kernels native libraries use (AVX2,
AVX-512, VNNI), library versions, ONNX Runtime providers, the native import-order guard,
and the backend each model runs on here with its measured parity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shopsearch import __version__
from shopsearch.cli.common import print_json, stdout
from shopsearch.system import machine_summary


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="print what a bug report needs: CPU, libraries, model backends and their parity",
        description="Describe this machine and installation. With DIR, also load the index's "
        "encoder and reranker and show the backend each runs on here and its parity with "
        "PyTorch; without DIR, the default encoder's.",
    )
    doctor.add_argument(
        "index_dir", metavar="DIR", type=Path, nargs="?", help="an index directory (optional)"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"shopsearch": __version__, **machine_summary()}
    report["native_import_order"] = _import_order()
    report["backends"] = _backends(args.index_dir)
    if args.json:
        print_json(report)
        return 0
    libraries = report.pop("libraries")
    backends = report.pop("backends")
    for key, value in report.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        stdout.print(f"[bold]{key}[/]: {value}")
    stdout.print("[bold]libraries[/]: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    for model, choice in backends.items():
        stdout.print(f"[bold]{model} backend[/]: {_describe(choice)}")
    return 0


def _import_order() -> str:
    modules = sys.modules
    if "usearch.compiled" in modules and "onnxruntime" not in modules:
        return "UNSAFE: usearch loaded before onnxruntime (see shopsearch/native.py)"
    return "ok: onnxruntime loads before usearch (shopsearch/native.py)"


def _backends(index_dir: Path | None) -> dict[str, Any]:
    if index_dir is None:
        from shopsearch.models.encoders import load_encoder

        encoder = load_encoder()
        choice = getattr(encoder, "backend_choice", None)
        return {"encoder (default)": choice.to_dict() if choice else {}}
    from shopsearch.pipeline import SearchPipeline

    with SearchPipeline.open(index_dir) as pipeline:
        if pipeline.config.reranker.path:
            pipeline.prepare_reranker()
        return pipeline.backends()


def _describe(choice: dict[str, Any]) -> str:
    backend = choice.get("backend", "?")
    parts = [backend]
    for parity in choice.get("parity", []):
        mark = "ok" if parity["passed"] else "FAILED"
        parts.append(
            f"{parity['backend']}: {parity['metric']} {parity['value']:.4f} "
            f"(needs >= {parity['threshold']}, {mark}, {parity['kernels']})"
        )
    if choice.get("reason"):
        parts.append(f"fell back from {choice['requested']}: {choice['reason']}")
    return "; ".join(parts)
