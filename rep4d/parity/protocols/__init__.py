"""Parity runners for the task-level protocol fixtures (``tests/fixtures/protocols/<family>/<case>``).

Each module is a runner of :data:`rep4d.parity.PARITY_RUNNERS`: it recognises its cases from ``case.json`` and
produces every output key through the same public functions a user calls (the video processors, label propagation,
the propagation metrics, the TAP-Vid query sampling), so ``rep4d parity CASE`` checks a protocol case exactly as it
checks a model case.
"""
