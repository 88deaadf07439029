"""Parity runner for `protocols/propagation_metrics` fixture cases (to be written)."""
