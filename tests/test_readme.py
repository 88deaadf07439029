"""Docs that cannot drift: every ```python and ```bash block of README.md runs, in README order, in one temp dir.

- Python blocks run in a fresh interpreter (``python -c``) with the temp dir as working directory.
- Bash blocks run line by line: a plain ``rep4d ...`` command (optionally chained with ``&&``) calls the console
  script's entry point, ``rep4d.cli.main`` (what ``[project.scripts] rep4d`` runs), in this process, so the dozen
  commands do not pay a torch import each; any other line (pipes, ``||``, ``$?``) runs in bash with the venv's
  ``bin/`` first on PATH, so ``rep4d`` there is the real console script. Every command must succeed.
- Commands that need the released checkpoints, a network install or minutes of CPU run against small fixtures or
  with tiny settings through :data:`SUBSTITUTIONS` (placeholder -> what runs, and why). Every substitution must be
  used: a README edit that drops its placeholder fails here and the table is updated with it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rep4d.cli import main as cli_main

from testing_utils import FIXTURES

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# (placeholder in the README, what runs instead, why). Applied to every block, in this order.
SUBSTITUTIONS = [
    # Quick start: the install needs the network, the suite cannot run inside itself, the demo takes a minute.
    ("bash scripts/setup.sh && ", "", "the test already runs inside the installed .venv (setup.sh needs the network)"),
    (".venv/bin/python -m pytest", "python -m pytest --version", "the suite cannot run inside one of its tests"),
    (".venv/bin/rep4d", "rep4d", "the same console script"),
    ("rep4d demo --output demo_output", "rep4d demo --output demo_output --num-frames 4 --resolution 32 --quiet",
     "the demo on a 4-frame 32x32 clip (seconds instead of a minute)"),
    # Released checkpoints -> the golden fixtures' parameters in the same released layout.
    ("scaling4d_dist_b_depth.npz", "tests/fixtures/4ds/tiny_depth/params.npz", "4DS backbone + depth readout"),
    ("scaling4d_dist_b.npz", "tests/fixtures/4ds/tiny_backbone/params.npz", "4DS backbone"),
    ("scaling4d_e.npz", "tests/fixtures/4ds/tiny_backbone/params.npz", "4DS backbone (sharding is exercised)"),
    ("moog_ego4d_backbone_ckpt_164335139.npz", "tests/fixtures/moog/tiny_points/backbone_params.npz", "MooG backbone"),
    ("moog_ego4d_point_track_head_ckpt_164335139.npz", "tests/fixtures/moog/tiny_points/point_head_params.npz",
     "MooG point head"),
    ("pretrain_rvm_base16_256_203916225.npz", "tests/fixtures/rvm/tiny_stream/params.npz", "RVM backbone"),
    ('"path/or/repo-id/4ds-b-dist-e"', '"4ds-tiny"', "a converted tiny 4DS folder (made before the blocks run)"),
    ("--backbone 4ds-b-dist-e", "--backbone 4ds-tiny", "the same tiny folder (the README converts 4ds-b-dist-e later)"),
    # Readout fine-tuning: a handful of clips and steps.
    ("--num-clips 1000", "--num-clips 4", "4 synthetic training clips"),
    ("--num-clips 200", "--num-clips 2", "2 synthetic evaluation clips"),
    ("--output runs/points\n",
     "--output runs/points --max-steps 2 --eval-steps 2 --batch-size 2 --report-to none --quiet\n",
     "2 optimizer steps"),
    ("--save-pictures 4", "--save-pictures 1 --quiet", "one picture"),
]


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every ```python / ```bash block, in order."""
    return re.findall(r"^```(python|bash)\n(.*?)^```", text, flags=re.S | re.M)


def substitute(code: str, used: set[int]) -> str:
    for index, (old, new, _) in enumerate(SUBSTITUTIONS):
        if old in code:
            code = code.replace(old, new)
            used.add(index)
    return code


def shell_lines(code: str) -> list[str]:
    """Logical lines of a bash block: ``\\`` continuations joined, comment-only and empty lines dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def make_workspace(tmp_path: Path) -> None:
    """What the README assumes exists: the fixtures (tests/), a converted 4DS folder and a video clip."""
    from rep4d.conversion import convert_checkpoint
    from rep4d.visualization import write_video

    (tmp_path / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    (tmp_path / "scripts").symlink_to(REPO / "scripts", target_is_directory=True)
    case = json.loads((FIXTURES / "4ds" / "tiny_backbone" / "case.json").read_text())
    convert_checkpoint(FIXTURES / "4ds" / "tiny_backbone" / "params.npz", tmp_path / "4ds-tiny", progress=False)
    height, width = case["image_size"]
    frames = np.random.default_rng(0).random((2 * case["num_frames"], height + 8, width + 8, 3))
    write_video(tmp_path / "clip.mp4", frames, fps=25)


def run_shell_block(code: str, cwd: Path, env: dict) -> str:
    output = []
    for line in shell_lines(code):
        plain = not re.search(r"[|;<>$`]", line)
        parts = [shlex.split(part, comments=True) for part in line.split("&&")] if plain else []
        if plain and all(argv and argv[0] == "rep4d" for argv in parts):
            for argv in parts:
                status = cli_main(argv[1:])
                assert status == 0, f"README command failed (exit status {status}): {shlex.join(argv)}"
            continue
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"README line failed: {line}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        output.append(result.stdout + result.stderr)
    # Output the block documents in comments ("# error: ...", "# exit status N") must be what the commands print.
    for line in code.splitlines():
        expected = line.strip()[2:]
        if line.strip().startswith(("# error:", "# exit status")):
            assert expected in "".join(output), f"README promises {expected!r}; the commands printed {output}"
    return "".join(output)


def test_every_readme_code_block_runs(tmp_path, monkeypatch):
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert sum(language == "python" for language, _ in blocks) >= 2
    assert sum(language == "bash" for language, _ in blocks) >= 4
    make_workspace(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    monkeypatch.chdir(tmp_path)
    used: set[int] = set()
    shell_output = []
    for number, (language, code) in enumerate(blocks):
        start = time.perf_counter()
        code = substitute(code, used)
        if language == "python":
            result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, f"README python block failed:\n{code}\n{result.stderr[-3000:]}"
        else:
            shell_output.append(run_shell_block(code, tmp_path, env))
        print(f"README block {number} ({language}): {time.perf_counter() - start:.1f}s")  # shown with pytest -s
    unused = [SUBSTITUTIONS[index][0] for index in range(len(SUBSTITUTIONS)) if index not in used]
    assert not unused, f"substitutions whose placeholder is no longer in README.md: {unused}"
    # What the blocks promise, checked on what they made.
    output = "".join(shell_output)
    assert "exit status 2" in output and "needs a model of family moog" in output, output  # the CLI section's example
    assert (tmp_path / "demo_output" / "summary.json").is_file()
    assert (tmp_path / "runs" / "points" / "config.json").is_file()
    assert (tmp_path / "4ds-b-dist-e" / "config.json").is_file() and (tmp_path / "rvm-b" / "config.json").is_file()


def test_substitution_table_is_documented():
    for old, new, why in SUBSTITUTIONS:
        assert old and old != new and why, (old, new)


def development_map_paths() -> list[Path]:
    """Every file or folder named in the README's "## Development" map (the fenced block under that heading)."""
    section = README.read_text().split("## Development\n", 1)[1]
    block = section.split("```\n", 2)[1]
    paths, folder = [], None
    for line in block.splitlines():
        head = line[:20].strip()
        if head:
            folder = head.split()[0]
            paths.append(REPO / folder)
        entry = line[20:].split("  ")[0].strip()  # the file column (a path, or "a.py / b.py", or "a.py, b.py")
        for name in re.split(r"[ ,/]+", entry.replace(" and ", " ")):
            if re.fullmatch(r"[\w.]+\.(py|md|sh)|[\w]+", name) and "<" not in name and folder:
                candidate = REPO / folder / name
                if name.endswith((".py", ".md", ".sh")) or candidate.is_dir():
                    paths.append(candidate)
    return paths


def test_development_map_names_files_that_exist():
    paths = development_map_paths()
    assert len(paths) > 40, f"the Development map should name the repo's files, parsed {len(paths)}"
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    assert not missing, f"README's Development map names files that do not exist: {missing}"
