"""``shopsearch context train``: learn the personalized ranking stage of an index."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from shopsearch.cli.common import add_index_dir, print_json, stderr, stdout
from shopsearch.errors import InvalidQueryError
from shopsearch.progress import RichProgress


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    context = subparsers.add_parser(
        "context", help="context-aware (personalized) ranking: train the LTR stage"
    )
    commands = context.add_subparsers(dest="context_command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train the learning-to-rank model from judgments and the index's events",
        description="Train LightGBM lambdarank over context features from (1) judgments "
        "(no user: general relevance) and (2) the logged queries in DIR's event store "
        "(`shopsearch events ingest`), labelled by clicks / add-to-cart / purchases with "
        "position-bias correction. Saves DIR/ltr/ and makes `personal` the default pipeline.",
    )
    add_index_dir(train)
    train.add_argument("--judgments", type=Path, metavar="FILE", help="graded judgments")
    train.add_argument(
        "--clients",
        type=Path,
        metavar="FILE",
        help="learn from these clients' events only (one id a line); default: all",
    )
    train.add_argument("--depth", type=int, default=50, help="candidates per judged query")
    train.add_argument("--rounds", type=int, default=300, help="boosting rounds (max)")
    train.add_argument("--json", action="store_true")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from shopsearch.context.behaviour import QueryBehaviour
    from shopsearch.context.ltr import PERSONAL_COLUMNS, LTRModel
    from shopsearch.context.ranker import ContextRanker
    from shopsearch.context.training import LTRData, click_groups, judgment_groups
    from shopsearch.evaluation.judgments import load_judgments
    from shopsearch.evaluation.metrics import ndcg
    from shopsearch.pipeline import LTR_DIR, SearchPipeline

    started = time.perf_counter()
    progress = RichProgress()
    with SearchPipeline.open(args.index_dir) as pipeline:
        store = pipeline.events
        data = LTRData()
        behaviour = QueryBehaviour.from_store(store)
        if args.judgments is not None:
            qrels: dict[str, dict[str, float]] = {}
            for j in load_judgments(args.judgments):
                if j.user_id is None:
                    qrels.setdefault(j.query, {})[j.product_id] = j.gain
            judgment_groups(
                pipeline,
                qrels,
                depth=args.depth,
                behaviour=behaviour,
                data=data,
                progress=progress,
            )
        clients = None
        if args.clients is not None:
            clients = {
                line.strip()
                for line in args.clients.read_text(encoding="utf-8").splitlines()
                if line.strip()
            }
        ids = clients if clients is not None else store.clients()
        events = [e for c in ids for e in store.events_of_client(c)]
        queries = {}
        for query_id in {e.query_id for e in events}:
            record = store.query(query_id)
            if record is not None:
                queries[query_id] = record.user_query
        # Profiles for training read the same store, restricted to events before each query.
        ranker = ContextRanker(
            None, events=store, products=pipeline.store.get_many, vectors=pipeline.product_vectors
        )
        click_groups(pipeline, ranker, events, queries, data=data, progress=progress)
        if not len(data):
            raise InvalidQueryError(
                "nothing to learn from: pass --judgments FILE and/or ingest events first "
                "(shopsearch events ingest DIR FILE)"
            )
        train, valid = data.split(0.2)
        # 1. The base model: relevance from judgments and logged searches, with the
        #    shopper's own context hidden (what every anonymous search gets).
        base_train, base_valid = train.without(PERSONAL_COLUMNS), valid.without(PERSONAL_COLUMNS)
        x, y, groups, positions = base_train.arrays()
        vx, vy, vg, _ = base_valid.arrays() if len(base_valid) else (None, None, None, None)
        uses_positions = "clicks" in base_train.kinds
        model = LTRModel.fit(
            x,
            y,
            groups,
            positions=positions if uses_positions else None,
            valid=(vx, vy, vg) if vx is not None else None,
            rounds=args.rounds,
            meta={"data": data.counts(), "judgments": str(args.judgments or "")},
        )
        # 2. The personal stage: what the shopper's own history adds, learned from logged
        #    searches (with the profile as it was before each search).
        clicks_train, clicks_valid = train.of_kind("clicks"), valid.of_kind("clicks")
        if len(clicks_train):
            x, y, groups, positions = clicks_train.arrays()
            vx, vy, vg, _ = clicks_valid.arrays() if len(clicks_valid) else (None,) * 4
            model = model.fit_personal(
                x,
                y,
                groups,
                positions=positions,
                valid=(vx, vy, vg) if vx is not None else None,
                rounds=args.rounds,
            )
        summary = {"training": train.counts(), "validation": valid.counts()}
        if len(valid):
            summary["validation_ndcg@10"] = _validation_ndcg(model, valid, ndcg)
        model.meta["summary"] = summary
        model.save(pipeline.directory.path / LTR_DIR)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["feature_importance_gain"] = {
        k: round(v, 1) for k, v in sorted(model.feature_importance().items(), key=lambda kv: -kv[1])
    }
    if args.json:
        print_json(summary)
    else:
        stdout.print(
            f"Trained the personal ranking stage in {summary['seconds']:.0f} s on "
            f"{train.counts()['groups']:,} query groups ({train.counts()['rows']:,} rows); "
            f"saved in {args.index_dir / LTR_DIR}"
        )
        if "validation_ndcg@10" in summary:
            stderr.print(f"validation nDCG@10 of the groups: {summary['validation_ndcg@10']}")
    return 0


def _validation_ndcg(model, valid, ndcg) -> dict[str, float]:  # noqa: ANN001
    """Mean nDCG@10 of the validation groups: first-stage order vs the model, per kind."""
    out: dict[str, list[tuple[float, float]]] = {}
    for x, y, kind in zip(valid.features, valid.labels, valid.kinds, strict=True):
        ids = [str(i) for i in range(len(y))]
        gains = {str(i): float(2**g - 1) for i, g in enumerate(y.tolist())}
        scores = model.predict(x)
        order = [ids[i] for i in np.argsort(-scores, kind="stable")]
        out.setdefault(kind, []).append((ndcg(ids, gains, 10), ndcg(order, gains, 10)))
    return {
        f"{kind} first-stage -> ltr": f"{np.mean([a for a, _ in v]):.4f} -> "
        f"{np.mean([b for _, b in v]):.4f} ({len(v)} groups)"
        for kind, v in out.items()
    }
