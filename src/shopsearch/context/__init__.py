"""Context-aware ranking: shopper profiles, context features, learning to rank."""
