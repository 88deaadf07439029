"""Repo-id loading: a published folder in an offline Hugging Face cache layout resolves by repo id
(``AutoModel.from_pretrained("rep4d/4ds-b-dist-e")``) with rep4d installed and, through the remote code, in a clean
process without rep4d. A tiny 4DS model stands in for the release: the folder name, repo id and code are the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor

import rep4d  # noqa: F401
from rep4d.modeling import FourDSModel
from rep4d.publishing import RELEASES, publish

from testing_utils import FIXTURES, run_isolated_python

REPO_ID = "rep4d/4ds-b-dist-e"
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a 40-hex commit hash: remote code needs one


def install_into_hf_cache(folder: Path, repo_id: str, hub_cache: Path, revision: str = REVISION) -> Path:
    repo_root = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_root / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (repo_root / "refs").mkdir(parents=True, exist_ok=True)
    (repo_root / "refs" / "main").write_text(revision)
    return snapshot


def published_cache(tmp_path: Path) -> Path:
    folder = tmp_path / "published"
    publish(FIXTURES / "4ds" / "tiny_backbone" / "params.npz", repo_id=REPO_ID, output_dir=folder,
            release=RELEASES["4ds-b-dist-e"])
    hf_home = tmp_path / "hf"
    install_into_hf_cache(folder, REPO_ID, hf_home / "hub")
    return hf_home


def test_repo_id_resolves_offline_with_rep4d_installed(tmp_path):
    hf_home = published_cache(tmp_path)
    model = AutoModel.from_pretrained(REPO_ID, cache_dir=hf_home / "hub").eval()
    processor = AutoVideoProcessor.from_pretrained(REPO_ID, cache_dir=hf_home / "hub")
    assert type(model) is FourDSModel, "rep4d's own class wins over the repo's code"
    assert type(processor).__name__ == "FourDSVideoProcessor"
    assert REVISION in str(model.name_or_path) or model.name_or_path == REPO_ID
    video = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    with torch.inference_mode():
        features = model(**processor(video, return_tensors="pt")).readout_features
    assert features.shape == (1, 4, 16, 64)


def test_repo_id_resolves_offline_through_remote_code_without_rep4d(tmp_path):
    hf_home = published_cache(tmp_path)
    video = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    code = f"""
import numpy as np, torch
from transformers import AutoModel, AutoVideoProcessor
model = AutoModel.from_pretrained({REPO_ID!r}, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained({REPO_ID!r}, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert {REVISION!r} in type(model).__module__ or "rep4d" in type(model).__module__, type(model).__module__
with torch.inference_mode():
    features = model(**processor(np.load({str(tmp_path / "video.npy")!r}), return_tensors="pt")).readout_features
np.save({str(tmp_path / "remote.npy")!r}, features.numpy())
print("remote", type(model).__name__, type(processor).__name__, tuple(features.shape))
"""
    result = run_isolated_python(code, cwd=tmp_path, env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote FourDSModel FourDSVideoProcessor (1, 4, 16, 64)" in result.stdout
    local = AutoModel.from_pretrained(REPO_ID, cache_dir=hf_home / "hub").eval()
    processor = AutoVideoProcessor.from_pretrained(REPO_ID, cache_dir=hf_home / "hub")
    with torch.inference_mode():
        expected = local(**processor(video, return_tensors="pt")).readout_features.numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), expected)
