"""Sentence embeddings for aspect grouping: all-MiniLM-L6-v2 in NumPy (:mod:`.minilm`)."""
