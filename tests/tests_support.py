"""Paths of the small test fixtures (importable from any test module)."""

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


def add_simulated_personalization(index: Path, work: Path) -> list[dict]:
    """Give ``index`` SIMULATED shoppers and a trained personal stage, as the CLI would:
    ``simulate`` over the tiny judgments (40 users + 5 cold-start, seed 3), ``events ingest``
    of their events, ``context train`` on the training users (30 rounds). Returns the
    simulated users (``user_id``, ``group``: train / test / cold_start)."""
    import json

    from shopsearch.cli import main

    sim = work / "sim"
    args = ["simulate", str(index), "--out", str(sim), "--judgments", str(TINY_JUDGMENTS)]
    assert main([*args, "--users", "40", "--cold-start", "5", "--seed", "3"]) == 0
    for name in ("events.jsonl", "events_test_users.jsonl"):
        assert main(["events", "ingest", str(index), str(sim / name)]) == 0
    users = json.loads((sim / "users.json").read_text())["users"]
    clients = work / "train_users.txt"
    clients.write_text("\n".join(u["user_id"] for u in users if u["group"] == "train"))
    train = ["context", "train", str(index), "--judgments", str(TINY_JUDGMENTS)]
    assert main([*train, "--clients", str(clients), "--rounds", "30"]) == 0
    return users
