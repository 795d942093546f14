"""``shopsearch simulate``: SIMULATED users searching an index (synthetic behaviour logs).

The output is SIMULATED data, not real user behaviour: invented users issue the judged
queries, see the index's non-personalized hybrid ranking, and click according to a
position-based click model (see :mod:`shopsearch.simulation`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shopsearch.cli.common import add_index_dir, stdout
from shopsearch.datasets import esci_us_judgments
from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.progress import RichProgress
from shopsearch.simulation.simulator import (
    SimulationConfig,
    pipeline_ranker,
    simulate,
    summarize,
    write_outputs,
)

_DEFAULTS = SimulationConfig()


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``shopsearch simulate``."""
    parser = subparsers.add_parser(
        "simulate",
        help="generate SIMULATED users, UBI events and per-user judgments (not real data)",
        description="SIMULATION: invent users with latent brand/category/color/price "
        "preferences, let them issue the judged queries against DIR's hybrid pipeline, and "
        "draw impressions, clicks, carts and purchases from a position-based click model. "
        "Writes UBI events (train users, test users), per-user held-out judgments, session "
        "context, users.json and a README.txt into OUT_DIR. Everything written is SIMULATED "
        "data, marked as such, and must never be reported as real user behaviour.",
    )
    add_index_dir(parser)
    parser.add_argument(
        "--out", required=True, type=Path, metavar="OUT_DIR", help="output directory"
    )
    parser.add_argument(
        "--judgments",
        type=Path,
        metavar="FILE",
        help="judged queries to draw from (default: the bundled ESCI-US judgments)",
    )
    parser.add_argument(
        "--users", type=int, default=_DEFAULTS.users, help=f"users (default {_DEFAULTS.users})"
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=_DEFAULTS.sessions_per_user,
        help=f"sessions per user, the last {_DEFAULTS.holdout_sessions} held out "
        f"(default {_DEFAULTS.sessions_per_user})",
    )
    parser.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help=f"seed (default {_DEFAULTS.seed})"
    )
    parser.add_argument(
        "--cold-start",
        type=int,
        default=_DEFAULTS.cold_start_users,
        metavar="N",
        help=f"extra users with no events, only held-out judgments "
        f"(default {_DEFAULTS.cold_start_users})",
    )
    parser.add_argument(
        "--test-share",
        type=float,
        default=_DEFAULTS.test_user_share,
        metavar="X",
        help="share of users kept out of events.jsonl (their events go to "
        f"events_test_users.jsonl; default {_DEFAULTS.test_user_share})",
    )
    parser.set_defaults(run=run_simulate)


def build_config(args: argparse.Namespace) -> SimulationConfig:
    """The :class:`SimulationConfig` of parsed arguments; bad values raise
    :class:`InvalidQueryError`."""
    try:
        return SimulationConfig(
            users=args.users,
            sessions_per_user=args.sessions,
            holdout_sessions=min(_DEFAULTS.holdout_sessions, max(args.sessions, 0)),
            seed=args.seed,
            cold_start_users=args.cold_start,
            test_user_share=args.test_share,
        )
    except ValueError as exc:
        raise InvalidQueryError(f"simulate: {exc}") from None


def format_summary(summary: Mapping[str, Any], out_dir: Path | str) -> str:
    """One summary line of a :func:`~shopsearch.simulation.summarize` dict."""
    users, sessions, queries = summary["users"], summary["sessions"], summary["queries"]
    events = ", ".join(f"{action} {n:,}" for action, n in summary["events"].items())
    ctr = " ".join(f"{x:.3f}" for x in summary["click_through_by_rank"])
    return (
        f"SIMULATED data written to {out_dir}: "
        f"{users['train'] + users['test']:,} users ({users['train']:,} train, "
        f"{users['test']:,} test) + {users['cold_start']:,} cold-start; "
        f"{sessions['training'] + sessions['holdout']:,} sessions "
        f"({sessions['training']:,} logged, {sessions['holdout']:,} held out); "
        f"{queries['total']:,} queries ({queries['unrelated_share']:.1%} unrelated); "
        f"events: {events}; CTR by rank 1-{len(summary['click_through_by_rank'])}: {ctr}"
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``shopsearch simulate``."""
    from shopsearch.pipeline import SearchPipeline

    config = build_config(args)
    judgments = load_judgments(args.judgments or esci_us_judgments())
    with SearchPipeline.open(args.index_dir) as pipeline:
        products = list(pipeline.store.iter_products())
        result = simulate(
            config, products, judgments, pipeline_ranker(pipeline), progress=RichProgress()
        )
    write_outputs(result, args.out)
    stdout.print(format_summary(summarize(result), args.out))
    return 0
