"""Conformance tests: transformers' own common test mixins run against the rep4d models, configs and processors.

Importing this conftest makes ``transformers_tests`` (transformers' ``tests/`` folder for the installed version,
fetched from the package registry on first use and cached) importable; see README.md in this folder.
"""

import pytest
from conformance.transformers_tests_fetch import TransformersTestsUnavailable, ensure_transformers_tests

try:
    ensure_transformers_tests()
except TransformersTestsUnavailable as error:
    # A loud collection error with one line of reason, never a skip: CI has the package registry.
    raise pytest.UsageError(f"conformance tests need transformers' common tests: {error}") from None


def pytest_configure(config):
    # Marks used by transformers' common tests (registered in transformers' own conftest).
    for mark in ("accelerate_tests", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test", "torch_compile_test",
                 "torch_export_test"):
        config.addinivalue_line("markers", f"{mark}: transformers common-test mark")
