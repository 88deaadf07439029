"""Model cards of the released checkpoints, generated from ``template.md`` (``python -m rep4d.model_cards.generate``)."""
