"""Paths of the small test fixtures (importable from any test module)."""

import functools
import json
from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).parent / "data"
TINY_CATALOG = DATA / "tiny_catalog.jsonl"
TINY_JUDGMENTS = DATA / "tiny_judgments.jsonl"


def build_tiny_bert(
    path: Path, words: list[str], *, layers: int = 4, dropout: float | None = None
) -> Path:
    """A randomly initialised 32-d BERT with a word-level vocabulary of ``words``, saved to
    ``path`` (model + tokenizer): fast stand-in for MiniLM in training tests."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab))  # transformers 5 ignores vocab_file=
    torch.manual_seed(0)
    extra = (
        {}
        if dropout is None
        else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    )
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def add_simulated_personalization(index: Path, work: Path, *, seed: int = 3) -> list[dict]:
    """Give ``index`` SIMULATED shoppers, PLANTED ones and a trained personal stage, as the
    CLI would: ``simulate`` over the tiny judgments (40 users + 5 cold-start, ``seed``),
    ``events ingest`` of their events and of :func:`planted_shopper_records`, ``context
    train`` on the simulated training users and the planted shoppers (30 rounds). Returns the
    simulated users (``user_id``, ``group``: train / test / cold_start).

    The planted shoppers carry the signal that tests of personalization rely on: the
    simulated ones' logs follow the machine's first-stage order (int8 kernels differ between
    CPUs) and their taste moves clicks too little for the personal stage to learn it from 40
    shoppers on every machine.
    """
    from shopsearch.cli import main

    sim = work / "sim"
    args = ["simulate", str(index), "--out", str(sim), "--judgments", str(TINY_JUDGMENTS)]
    assert main([*args, "--users", "40", "--cold-start", "5", "--seed", str(seed)]) == 0
    records, planted = planted_shopper_records()
    planted_file = work / "planted_events.jsonl"
    planted_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    for path in (sim / "events.jsonl", sim / "events_test_users.jsonl", planted_file):
        assert main(["events", "ingest", str(index), str(path)]) == 0
    users = json.loads((sim / "users.json").read_text())["users"]
    clients = work / "train_users.txt"
    train_users = [u["user_id"] for u in users if u["group"] == "train"]
    clients.write_text("\n".join([*train_users, *planted]))
    train = ["context", "train", str(index), "--judgments", str(TINY_JUDGMENTS)]
    assert main([*train, "--clients", str(clients), "--rounds", "30"]) == 0
    return users


#: When the planted shoppers act (Unix seconds): before the simulated shoppers' month.
PLANTED_START = 1_780_000_000
_DAY = 86_400
RELEVANT_LABELS = ("E", "S")


def planted_shopper_records(judgments: Path = TINY_JUDGMENTS) -> tuple[list[dict], list[str]]:
    """UBI records of PLANTED shoppers who follow a fixed rule, strong enough for any
    correct personal stage to learn, and their client ids.

    For each relevant (E or S) product P of each judged query:

    - a *loyal* shopper searches the query in three sessions a week apart and buys P each
      time, wherever it is shown: their history (the user features) predicts the purchase;
    - an *intent* shopper bought a decoy (another relevant product of the query, of another
      brand where there is one) a week earlier; in a new session they view P (a click whose
      search logged no impressions), search the query again and buy P: the session (the
      session features) predicts the purchase, against the long-term history.

    Shown lists are the query's judged products in the judgments' order, rotated, with P
    never first: nothing depends on a machine's ranking.
    """
    from shopsearch.catalog.loaders import load_catalog

    brands = {p.id: p.brand.casefold() for p in load_catalog(TINY_CATALOG).products}
    judged: dict[str, list[tuple[str, str]]] = {}
    for line in judgments.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        judged.setdefault(row["query"], []).append((row["product_id"], row["label"]))
    log = _PlantedLog()
    clients: list[str] = []
    t = PLANTED_START
    for q, (query, rows) in enumerate(judged.items()):
        products = [pid for pid, _ in rows]
        relevant = [pid for pid, label in rows if label in RELEVANT_LABELS]
        for i, favourite in enumerate(relevant):
            shown = functools.partial(_shown_list, products, favourite)
            loyal = f"planted-loyal-{q}-{i}"
            bought = [("click", favourite), ("purchase", favourite)]
            for s in range(3):
                log.search(loyal, f"{loyal}-s{s}", t + 7 * _DAY * s, query, shown(i + s), bought)
            decoys = [p for p in relevant if p != favourite]
            decoy = next((p for p in decoys if brands[p] != brands[favourite]), decoys[0])
            intent, later = f"planted-intent-{q}-{i}", t + 7 * _DAY
            session = f"{intent}-s1"
            log.search(intent, f"{intent}-s0", t, query, shown(i + 3), [("purchase", decoy)])
            log.search(intent, session, later, brands[favourite], [], [("click", favourite)])
            buys = [("click", favourite), ("add_to_cart", favourite), ("purchase", favourite)]
            log.search(intent, session, later + 120, query, shown(i + 4), buys)
            clients += [loyal, intent]
            t += 3_600
    return log.records, clients


def _shown_list(products: list[str], favourite: str, turn: int) -> list[str]:
    """``products`` with ``favourite`` moved to position 2..n (1-based), by ``turn``."""
    others = [p for p in products if p != favourite]
    at = 1 + turn % len(others)
    return [*others[:at], favourite, *others[at:]]


class _PlantedLog:
    """UBI query and event records, with deterministic ids."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def search(
        self,
        client: str,
        session: str,
        t: int,
        query: str,
        shown: list[str],
        actions: list[tuple[str, str]],
    ) -> None:
        """One search at ``t``: impressions of ``shown``, then ``actions`` on products."""
        query_id = f"planted-q{len(self.records)}"
        self.records.append(
            {
                "query_id": query_id,
                "client_id": client,
                "session_id": session,
                "user_query": query,
                "timestamp": _iso(t),
                "query_attributes": {"planted": True},
            }
        )
        timed = [(t + 1, "impression", pid) for pid in shown]
        timed += [(t + 10 * (n + 1), action, pid) for n, (action, pid) in enumerate(actions)]
        for when, action, pid in timed:
            attributes: dict = {"object": {"object_id": pid, "object_id_field": "product_id"}}
            if pid in shown:
                attributes["position"] = {"ordinal": shown.index(pid) + 1}
            self.records.append(
                {
                    "event_id": f"planted-e{len(self.records)}",
                    "action_name": action,
                    "query_id": query_id,
                    "client_id": client,
                    "session_id": session,
                    "timestamp": _iso(when),
                    "event_attributes": attributes,
                }
            )


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_tiny_sentence_transformer(path: Path, words: list[str]) -> Path:
    """A randomly initialised 2-layer, 32-d BERT over ``words`` with mean pooling, saved as
    a sentence-transformers directory (``path/st``)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    raw = build_tiny_bert(path / "raw", list(words), layers=2, dropout=0.0)
    transformer = Transformer(str(raw), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    model.save(str(path / "st"), create_model_card=False)
    return path / "st"
