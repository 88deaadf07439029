"""Parity runner for `protocols/preprocess` fixture cases (to be written)."""
