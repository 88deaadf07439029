"""Pretraining and readout fine-tuning (``rep4d.training``)."""
