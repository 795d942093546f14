"""The ``shopsearch`` command. Each subcommand lives in its own module with
``add_parser(subparsers)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from shopsearch import __version__
from shopsearch.cli import (
    catalog_cmds,
    context_cmd,
    doctor_cmd,
    eval_cmd,
    events_cmd,
    fusion_cmd,
    search_cmd,
    serve_cmd,
    simulate_cmd,
    synonyms_cmd,
    train_cmd,
)
from shopsearch.errors import ShopSearchError, ShopSearchWarning

COMMANDS = (
    catalog_cmds,
    search_cmd,
    eval_cmd,
    train_cmd,
    fusion_cmd,
    simulate_cmd,
    context_cmd,
    events_cmd,
    synonyms_cmd,
    serve_cmd,
    doctor_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopsearch",
        description="Context-aware e-commerce product search: index a catalog, search it, "
        "evaluate it.",
    )
    parser.add_argument("--version", action="version", version=f"shopsearch {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ShopSearchError as exc:
        print(f"shopsearch {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"shopsearch {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> int:
    """The ``shopsearch`` program: :func:`main` with our warnings printed as
    ``shopsearch: warning: ...`` (no source file and line)."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if issubclass(category, ShopSearchWarning):
            print(f"shopsearch: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    return main()
