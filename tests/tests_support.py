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
