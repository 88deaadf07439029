"""Parity runner for `protocols/label_propagation` fixture cases (to be written)."""
