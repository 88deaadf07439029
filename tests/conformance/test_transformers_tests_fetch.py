"""The fetch of transformers' common tests: atomic extraction, cache reuse, stand-ins, and loud one-line failures.

Runs offline: pip is pointed at a local folder (``PIP_NO_INDEX`` + ``PIP_FIND_LINKS``) holding a small fake
transformers source distribution.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest
from conformance.transformers_tests_fetch import (
    PACKAGE,
    REQUIRED,
    SHIMS,
    TransformersTestsUnavailable,
    ensure_transformers_tests,
)

VERSION = "0.0.1"


def write_fake_sdist(folder: Path, files: dict[str, str]) -> None:
    root = f"transformers-{VERSION}"
    setup = f"from setuptools import setup\nsetup(name='transformers', version='{VERSION}', py_modules=[])\n"
    with tarfile.open(folder / f"{root}.tar.gz", "w:gz") as tar:
        for name, text in {"setup.py": setup, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def offline_pip(tmp_path, monkeypatch):
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("REP4D_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REP4D_TRANSFORMERS_TESTS", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return links


def test_fetch_extracts_the_tests_folder_atomically_and_reuses_the_cache(offline_pip, tmp_path):
    files = {f"tests/{name}": f"# {name}\n" for name in REQUIRED}
    files["tests/__init__.py"] = "raise RuntimeError('must be replaced by an empty package file')\n"
    files["src/transformers/__init__.py"] = ""
    write_fake_sdist(offline_pip, files)
    folder = ensure_transformers_tests(VERSION)
    assert folder == tmp_path / "cache" / "transformers-tests" / VERSION / PACKAGE
    assert all((folder / name).is_file() for name in REQUIRED)
    assert (folder / "__init__.py").read_text() == ""
    assert all((folder / name).is_file() for name in SHIMS)
    assert not (folder / "src").exists() and not (folder / "setup.py").exists()  # only tests/ is extracted
    assert str(folder.parent) in sys.path
    assert [p.name for p in folder.parent.iterdir()] == [PACKAGE]  # no temporary folder left behind
    # A second run uses the cache: nothing is downloaded (the sdist is gone).
    (offline_pip / f"transformers-{VERSION}.tar.gz").unlink()
    assert ensure_transformers_tests(VERSION) == folder


def test_fetch_failure_is_a_one_line_error(offline_pip):
    with pytest.raises(TransformersTestsUnavailable, match=f"transformers {VERSION} source distribution") as error:
        ensure_transformers_tests(VERSION)
    assert "\n" not in str(error.value)


def test_an_sdist_without_the_common_tests_is_an_error(offline_pip, tmp_path):
    write_fake_sdist(offline_pip, {"tests/test_modeling_common.py": ""})
    with pytest.raises(TransformersTestsUnavailable, match="has no tests/test_configuration_common.py"):
        ensure_transformers_tests(VERSION)
    assert not (tmp_path / "cache" / "transformers-tests" / VERSION / PACKAGE).exists()


def test_override_folder_must_hold_the_common_tests(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / PACKAGE
    folder.mkdir()
    monkeypatch.setenv("REP4D_TRANSFORMERS_TESTS", str(folder))
    with pytest.raises(TransformersTestsUnavailable, match="has no test_modeling_common.py"):
        ensure_transformers_tests()
    for name in REQUIRED:
        (folder / name).write_text("")
    assert ensure_transformers_tests() == folder and str(tmp_path) in sys.path
