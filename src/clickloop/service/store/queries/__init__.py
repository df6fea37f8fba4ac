"""Dialect-independent queries, one module per concern; each function runs inside a given :class:`Tx`."""
