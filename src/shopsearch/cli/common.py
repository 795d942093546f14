"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from shopsearch.errors import InvalidQueryError

# Piped output (CI logs, files) gets a wide page instead of rich's 80 columns.
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def key_values(pairs: list[str] | None, what: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidQueryError(f"{what}: expected KEY=VALUE, got {pair!r}")
        result[key.strip()] = value.strip()
    return result


def add_index_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index_dir", metavar="DIR", type=Path, help="index directory")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
