"""Built-in model factories (filled in by the model-zoo work; see issue 3)."""
