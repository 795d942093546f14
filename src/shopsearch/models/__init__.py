"""Models: text encoders (bi-encoders) for dense retrieval."""
