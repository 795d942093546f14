"""A Markdown table of queries and what query analysis understood of them (for the README).

    python benchmarks/parse_table.py [--index indexes/esci-us] [QUERY ...]

Without queries: a fixed selection of the bundled ESCI queries (real shoppers' queries),
a few of them with a typo, and queries with prices, quantities and operators.
"""

from __future__ import annotations

import argparse

from shopsearch.pipeline import SearchPipeline
from shopsearch.query import ParsedQuery

QUERIES = [
    "toddler water bottle without straw",
    "cat treats without chicken",
    "weighted blanket without glass beads",
    "lights without wiring with switch",
    "mens bathing suits without mesh liner",
    "gift not included batteries",
    "silverware storage box without silverware",
    "listen without prejudice shirt",
    "non-slip bath mat",
    "no show socks women",
    "BPA free water bottle",
    "toothpaste without sweetner",
    "vinpositine",
    "fragon book",
    "ugg slippers women",
    "women's office shoes",
    "blue suit for baby boy",
    "boys pants slim fit",
    "stainles steel watter bottel",
    "audible bools",
    "marvle against humanity game",
    "tshirt for men",
    "air pods case",
    "vitamin c 200mg",
    "water bottle 32 oz",
    '1/2" pvc pipe',
    "pack of 3 socks",
    "water bottle under $20",
    "rug $20-$50",
    "dumbbells under 50 lbs",
    "tv over 100",
    'water bottle -plastic "stainless steel"',
    "airpods 2",
    "rtx 3080",
    "trp spyre",
]


def understood(parsed: ParsedQuery) -> str:
    parts = []
    if parsed.corrections:
        parts.append("spelling: " + ", ".join(f"{a} → {b}" for a, b in parsed.corrections))
    parts += [c["label"] for c in parsed.constraints()]
    if parsed.expansions:
        parts.append("also matches: " + ", ".join(parsed.expansions[:4]))
    return "; ".join(parts) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="indexes/esci-us")
    parser.add_argument("queries", nargs="*")
    args = parser.parse_args()
    with SearchPipeline.open(args.index) as pipeline:
        print("| query | matched text | understood |")
        print("|---|---|---|")
        for query in args.queries or QUERIES:
            parsed = pipeline.search(query, 1, facets=False, products=False).parsed
            assert parsed is not None
            cell = query.replace("|", "\\|")
            print(f"| `{cell}` | {parsed.text.replace('|', '/')} | {understood(parsed)} |")


if __name__ == "__main__":
    main()
