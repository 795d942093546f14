"""``shopsearch serve`` (the HTTP API) and ``shopsearch keys`` (its API keys)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.table import Table

from shopsearch.cli.common import add_index_dir, print_json, stderr, stdout
from shopsearch.errors import IndexNotFoundError
from shopsearch.index.directory import IndexDirectory


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve an index over HTTP (search, events, products, metrics)",
        description="Serve DIR over HTTP. Settings: defaults, then --config FILE (TOML), then "
        "SHOPSEARCH_SERVE_<NAME> environment variables, then --host/--port. Every route but "
        "/healthz and the storefront page (/) needs a key from `shopsearch keys create`. "
        "SIGHUP reloads the index (like POST /v1/admin/reload); SIGTERM stops gracefully.",
    )
    add_index_dir(serve)
    serve.add_argument("--config", type=Path, metavar="FILE", help="settings file (TOML)")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0: any free port)")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (default 1; 2 suits a 2-core machine: a process serves about "
        "one core's worth of searches)",
    )
    serve.set_defaults(run=run_serve)

    keys = subparsers.add_parser(
        "keys",
        help="create, list and revoke the API keys of an index's server",
        description="API keys are stored as SHA-256 hashes in DIR/api_keys.json; a new key "
        "is shown once. A running server picks up changes within a second.",
    )
    commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="create a key and print it (shown only once)")
    add_index_dir(create)
    create.add_argument("--name", required=True, help="a unique name (appears in logs)")
    create.add_argument(
        "--scopes",
        required=True,
        metavar="SCOPES",
        help="comma-separated: search, events, admin (admin implies all)",
    )
    create.add_argument(
        "--rate", type=float, metavar="R", help="requests per second (default: the server's)"
    )
    create.add_argument("--burst", type=int, metavar="N", help="burst size (default: the server's)")
    create.set_defaults(run=run_keys_create)

    listing = commands.add_parser("list", help="list the keys (names, scopes, limits)")
    add_index_dir(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_keys_list)

    revoke = commands.add_parser("revoke", help="revoke a key by name")
    add_index_dir(revoke)
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(run=run_keys_revoke)


def _require_index(path: Path) -> None:
    if not IndexDirectory(path).exists():
        raise IndexNotFoundError(
            f"no shopsearch index at {path}: build one with `shopsearch index CATALOG --out {path}`"
        )


def run_serve(args: argparse.Namespace) -> int:
    from shopsearch.serve import ServeSettings
    from shopsearch.serve.workers import run_server

    settings = ServeSettings.load(args.config).with_overrides(
        host=args.host, port=args.port, workers=args.workers
    )
    _require_index(args.index_dir)
    return run_server(args.index_dir, settings)


def run_keys_create(args: argparse.Namespace) -> int:
    from shopsearch.serve.keys import KeyFile

    _require_index(args.index_dir)
    key = KeyFile(args.index_dir).create(
        args.name, scopes=args.scopes.split(","), rate_limit=args.rate, burst=args.burst
    )
    stderr.print(f"created key [bold]{args.name}[/] ({args.scopes}); it is shown only this once:")
    print(key)
    return 0


def run_keys_list(args: argparse.Namespace) -> int:
    from shopsearch.serve.keys import KeyFile

    _require_index(args.index_dir)
    keys = KeyFile(args.index_dir).load()
    if args.json:
        print_json(
            [
                {
                    "name": k.name,
                    "scopes": list(k.scopes),
                    "rate_limit": k.rate_limit,
                    "burst": k.burst,
                    "created": k.created,
                }
                for k in keys
            ]
        )
        return 0
    table = Table(title=f"API keys of {args.index_dir}", title_justify="left")
    for column in ("name", "scopes", "rate/s", "burst", "created (UTC)"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.name,
            ",".join(k.scopes),
            "default" if k.rate_limit is None else f"{k.rate_limit:g}",
            "default" if k.burst is None else str(k.burst),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k.created)),
        )
    stdout.print(table if keys else "no keys")
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    from shopsearch.serve.keys import KeyFile

    _require_index(args.index_dir)
    KeyFile(args.index_dir).revoke(args.name)
    stderr.print(f"revoked key [bold]{args.name}[/]")
    return 0
