"""Fetch transformers' own common test mixins for the installed transformers version, at test time.

transformers publishes its common test mixins (``tests/test_modeling_common.py`` ``ModelTesterMixin``,
``tests/test_configuration_common.py`` ``ConfigTester``, ``tests/test_video_processing_common.py``
``VideoProcessingTestMixin``, ...) in its source distribution on the package registry, not in the wheel. This module
downloads that source distribution with pip (``pip download --no-deps --no-binary :all: transformers==<installed>``),
extracts its ``tests/`` folder into a cache as a package named ``transformers_tests`` (so it never clashes with this
repository's own ``tests`` folder) and puts the cache on ``sys.path``:

    from transformers_tests.test_modeling_common import ModelTesterMixin, floats_tensor

Cache: ``$REP4D_CACHE`` or ``$XDG_CACHE_HOME/rep4d`` or ``~/.cache/rep4d``, then
``transformers-tests/<version>/transformers_tests``. It is written to a temporary folder and renamed into place, so a
concurrent or interrupted run never leaves a partial copy; later runs reuse it without the network.
``REP4D_TRANSFORMERS_TESTS`` may point at an existing transformers ``tests`` folder instead (offline machines).

The source distribution lacks three modules that ``tests/`` imports from sub-folders it does not ship
(``exporters/``, ``generation/``, ``utils/``); small stand-ins are written next to the extracted files (see
``SHIMS``): no export or generation tests run (our models export nothing and do not generate), and
``config_common_kwargs`` is the dict of ``tests/utils/test_configuration_utils.py`` (the values
``ConfigTester.check_config_arguments_init`` sets through ``PreTrainedConfig.__init__``).

A failed fetch is an error with a one-line reason (:class:`TransformersTestsUnavailable`), never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "transformers_tests"

SHIMS = {
    "exporters/__init__.py": "",
    "exporters/test_export.py": (
        '"""Stand-in: the sdist does not ship tests/exporters; no torch.export tests run here."""\n\n\n'
        "class ExportTesterMixin:\n    pass\n"
    ),
    "generation/__init__.py": "",
    "generation/test_utils.py": (
        '"""Stand-in: the sdist does not ship tests/generation; rep4d models do not generate."""\n\n\n'
        "class GenerationTesterMixin:\n    pass\n"
    ),
    "utils/__init__.py": "",
    "utils/test_configuration_utils.py": (
        '"""Stand-in for the one name test_configuration_common imports (the sdist does not ship tests/utils)."""\n\n'
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "output_attentions": True,\n'
        '    "dtype": "float16",\n'
        '    "chunk_size_feed_forward": 5,\n'
        '    "architectures": ["BertModel"],\n'
        '    "id2label": {0: "label"},\n'
        '    "label2id": {"label": "0"},\n'
        '    "problem_type": "regression",\n'
        "}\n"
    ),
}
# Files the conformance tests need; their absence in a cache or an override folder is an error.
REQUIRED = ("test_modeling_common.py", "test_configuration_common.py", "test_video_processing_common.py")


class TransformersTestsUnavailable(RuntimeError):
    """transformers' common tests could not be fetched or found (the message says why, in one line)."""


def installed_transformers_version() -> str:
    from importlib.metadata import version

    return version("transformers")


def cache_root() -> Path:
    if os.environ.get("REP4D_CACHE"):
        return Path(os.environ["REP4D_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rep4d"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1][:300]


def _download_sdist(version: str, dest: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--no-build-isolation", f"transformers=={version}", "--dest", str(dest),
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TransformersTestsUnavailable(
            f"could not download the transformers {version} source distribution with pip: {error}"
        ) from None
    archives = sorted(dest.glob("transformers-*.tar.gz"))
    if not archives:
        raise TransformersTestsUnavailable(
            f"pip download of the transformers {version} source distribution failed (exit {result.returncode}): "
            f"{_one_line(result.stderr or result.stdout)}"
        )
    return archives[0]


def _extract_tests(archive: Path, target: Path) -> None:
    """Extract ``<sdist>/tests/*`` into ``target`` (a new folder) and write the package files and shims."""
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) >= 3 and parts[1] == "tests" and (member.isfile() or member.isdir()):
                member.name = str(Path(*parts[2:]))
                members.append(member)
        tar.extractall(target, members=members, filter="data")
    missing = [name for name in REQUIRED if not (target / name).is_file()]
    if missing:
        raise TransformersTestsUnavailable(f"{archive.name} has no tests/{missing[0]}")
    # The package must stay empty: test_configuration_common executes it once as a stand-in "transformers" module.
    (target / "__init__.py").write_text("")
    for relative, text in SHIMS.items():
        path = target / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def ensure_transformers_tests(version: str | None = None) -> Path:
    """Make ``transformers_tests`` importable and return its folder (fetching it on first use)."""
    override = os.environ.get("REP4D_TRANSFORMERS_TESTS")
    if override:
        folder = Path(override).resolve()
        missing = [name for name in REQUIRED if not (folder / name).is_file()]
        if missing:
            raise TransformersTestsUnavailable(f"REP4D_TRANSFORMERS_TESTS={override} has no {missing[0]}")
        if folder.name != PACKAGE:
            raise TransformersTestsUnavailable(
                f"REP4D_TRANSFORMERS_TESTS must name a folder called {PACKAGE!r} (a copy of transformers' tests/), "
                f"got {folder.name!r}"
            )
        _add_to_path(folder.parent)
        return folder

    version = version or installed_transformers_version()
    version_dir = cache_root() / "transformers-tests" / version
    folder = version_dir / PACKAGE
    if not all((folder / name).is_file() for name in REQUIRED):
        version_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=version_dir, prefix=".fetch-") as scratch:
            scratch = Path(scratch)
            archive = _download_sdist(version, scratch / "download")
            staged = scratch / PACKAGE
            try:
                _extract_tests(archive, staged)
            except (tarfile.TarError, OSError) as error:
                raise TransformersTestsUnavailable(f"could not extract tests/ from {archive.name}: {error}") from None
            try:
                staged.rename(folder)
            except OSError:
                # Another process finished first: keep its copy if complete, else replace the partial one.
                if not all((folder / name).is_file() for name in REQUIRED):
                    shutil.rmtree(folder, ignore_errors=True)
                    staged.rename(folder)
    _add_to_path(version_dir)
    return folder


def _add_to_path(parent: Path) -> None:
    entry = str(parent)
    if entry not in sys.path:
        sys.path.insert(0, entry)


if __name__ == "__main__":  # prefetch: python tests/conformance/transformers_tests_fetch.py
    print(ensure_transformers_tests())
