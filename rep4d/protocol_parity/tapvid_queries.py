"""Parity runner for `protocols/tapvid_queries` fixture cases (to be written)."""
