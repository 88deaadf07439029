"""Publishing: model cards for the ten releases, `rep4d publish` folders (real weights for the small releases, shape
only dry runs for all ten), the push path with the upload mocked, and the cards' usage snippets run for real.

Which releases are exercised how:
- every release (all ten, 4DS-e's 3.8B included): dry-run publish from the manifest shapes (meta device, no
  weights): card, config + auto_map + custom_pipelines, processor config, code, weights_plan.json;
- MooG box tracking (backbone + released box head, 30.8M parameters): a real publish from synthetic .npz files with
  the manifests' exact keys and shapes, reloaded and compared array by array;
- the usage snippets: run against tiny converted folders of the same code (4DS backbone and depth, MooG point
  tracking, RVM), with the repo id replaced by the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

import rep4d  # noqa: F401
from rep4d.cli import main as cli_main
from rep4d.publishing import RELEASES, USAGE, publish, write_release_cards

from testing_utils import FIXTURES, MANIFESTS

REPO_ROOT = Path(__file__).resolve().parent.parent
CARDS = REPO_ROOT / "model_cards"


def test_every_release_has_a_card_that_is_up_to_date(tmp_path):
    assert len(RELEASES) == 10
    write_release_cards(tmp_path)
    for name, release in RELEASES.items():
        committed = (CARDS / name / "README.md").read_text()
        assert (tmp_path / name / "README.md").read_text() == committed, f"run python model_cards/generate.py ({name})"
        card = ModelCard.load(CARDS / name / "README.md")
        data = card.data.to_dict()
        assert data["library_name"] == "transformers" and data["license"] == "cc-by-4.0"
        assert "custom_code" in data["tags"] and f"arxiv:{release.paper.arxiv}" in data["tags"]
        assert data.get("pipeline_tag") == release.pipeline_tag
        assert f"{release.num_parameters_from_manifests():,}" in card.text
        assert "## Limitations" in card.text and "## Input format" in card.text and "```python" in card.text
        # No result numbers are relayed by the specs, so none are published.
        assert "model-index" not in data and "eval_results" not in data


def test_card_metadata_for_heads_names_base_model_and_datasets():
    data = ModelCard.load(CARDS / "4ds-b-dist-e-scannet-depth" / "README.md").data.to_dict()
    assert data["base_model"] == "rep4d/4ds-b-dist-e" and data["datasets"] == ["ScanNet"]
    assert ModelCard.load(CARDS / "moog-point-tracking" / "README.md").data.base_model == "rep4d/moog-backbone"


EXPECTED_CLASS = {
    "4ds-b-dist-e": "FourDSModel", "4ds-e": "FourDSModel", "4ds-b-dist-e-scannet-depth": "FourDSForDepthEstimation",
    "moog-backbone": "MooGModel", "moog-point-tracking": "MooGForPointTracking",
    "moog-box-tracking": "MooGForBoxTracking", "rvm-s": "RVMForMaskedReconstruction",
    "rvm-b": "RVMForMaskedReconstruction", "rvm-l": "RVMForMaskedReconstruction", "rvm-h": "RVMForMaskedReconstruction",
}


@pytest.mark.parametrize("name", list(RELEASES))
def test_dry_run_publish_of_every_release_from_manifest_shapes(tmp_path, name):
    release = RELEASES[name]
    out = tmp_path / name
    result = publish(shapes=release.shapes(), repo_id=release.repo_id, output_dir=out, dry_run=True)
    assert result.release is release and result.model_class == EXPECTED_CLASS[name]
    assert result.num_parameters == release.num_parameters_from_manifests()
    files = {path.name for path in out.iterdir()}
    assert {"README.md", "config.json", "weights_plan.json"} <= files
    assert ("pipelines.py" in files) == bool(release.pipeline_tasks)
    assert not any(file.endswith(".safetensors") for file in files), "a dry run writes no weights"
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [EXPECTED_CLASS[name]]
    assert config["auto_map"]["AutoConfig"].startswith("configuration_")
    module = config["auto_map"]["AutoModel"].split(".")[0]
    assert f"{module}.py" in files and config["auto_map"]["AutoModel"].count(".") == 1
    if EXPECTED_CLASS[name] in ("MooGForPointTracking", "MooGForBoxTracking"):
        assert config["auto_map"]["AutoModel"] == f"modeling_moog.{EXPECTED_CLASS[name]}"
    assert set(config.get("custom_pipelines", {})) == set(release.pipeline_tasks)
    processor = json.loads((out / "video_preprocessor_config.json").read_text())
    assert processor["auto_map"]["AutoVideoProcessor"].split(".")[0] + ".py" in files
    plan = json.loads((out / "weights_plan.json").read_text())
    assert plan["num_parameters"] == result.num_parameters
    assert sum(len(shard) for shard in plan["shards"].values()) == len(plan["shards"].get("model.safetensors", {})) \
        or len(plan["shards"]) > 1
    assert ModelCard.load(out / "README.md").data.library_name == "transformers"
    assert not list(tmp_path.glob(".*partial*")), "nothing partial is left"


def synthetic_npz(path, manifest, seed):
    rng = np.random.default_rng(seed)
    params = json.loads(Path(manifest).read_text())["params"]
    np.savez(path, **{key: rng.standard_normal(shape, dtype=np.float32) * 0.02 for key, shape, _ in params})
    return path


def test_real_publish_of_moog_box_tracking_from_synthetic_weights(tmp_path):
    from rep4d.modeling import MooGForBoxTracking

    release = RELEASES["moog-box-tracking"]
    files = [synthetic_npz(tmp_path / name, manifest, seed)
             for seed, (name, manifest) in enumerate(zip(release.files, release.manifest_paths()))]
    out = tmp_path / "moog-box-tracking"
    result = publish(files, repo_id="rep4d/moog-box-tracking", output_dir=out)
    assert result.release is release and not result.dry_run
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    model = MooGForBoxTracking.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == release.num_parameters_from_manifests()
    head = np.load(files[1], allow_pickle=False)
    key = next(k for k in head.files if k.endswith("Dense_0/bias"))
    assert any(np.array_equal(head[key], tensor.numpy()) for tensor in model.state_dict().values()
               if tuple(tensor.shape) == head[key].shape)


def test_push_uploads_the_folder_with_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: calls.append(("create_repo", a, k)))
    monkeypatch.setattr(huggingface_hub, "upload_folder",
                        lambda **k: calls.append(("upload_folder", (), k)) or "https://hf.co/commit/abc")
    out = tmp_path / "tiny"
    result = publish(FIXTURES / "4ds" / "tiny_depth" / "params.npz", repo_id="me/tiny-depth", output_dir=out,
                     push=True, private=True)
    assert result.pushed and result.commit_url == "https://hf.co/commit/abc"
    assert calls[0][0] == "create_repo" and calls[0][1] == ("me/tiny-depth",) and calls[0][2]["private"] is True
    assert calls[1][0] == "upload_folder" and calls[1][2]["folder_path"] == str(out)
    assert calls[1][2]["repo_id"] == "me/tiny-depth"
    with pytest.raises(ValueError, match="dry run"):
        publish(FIXTURES / "4ds" / "tiny_depth" / "params.npz", repo_id="me/x", output_dir=tmp_path / "y",
                dry_run=True, push=True)


def test_cli_publish_dry_run_from_a_manifest_and_errors(tmp_path, capsys):
    manifest = MANIFESTS / "rvm" / "pretrain_rvm_huge16_256_203854202.json"
    out = tmp_path / "rvm-h"
    assert cli_main(["publish", "--manifest", str(manifest), "--repo-id", "rep4d/rvm-h", "--output", str(out),
                     "--dry-run"]) == 0
    assert "RVM-H" in capsys.readouterr().out and (out / "README.md").is_file()
    assert cli_main(["publish", "--manifest", str(manifest), "--repo-id", "rep4d/rvm-h", "--output",
                     str(tmp_path / "z")]) == 2
    assert cli_main(["publish", str(FIXTURES / "4ds" / "tiny_depth" / "params.npz"), "--repo-id", "noslash",
                     "--output", str(tmp_path / "w")]) == 1
    assert not (tmp_path / "w").exists()


SNIPPET_FOLDERS = {
    "fourds_backbone": [FIXTURES / "4ds" / "tiny_backbone" / "params.npz"],
    "fourds_depth": [FIXTURES / "4ds" / "tiny_depth" / "params.npz"],
    "moog_points": [FIXTURES / "moog" / "tiny_points" / "backbone_params.npz",
                    FIXTURES / "moog" / "tiny_points" / "point_head_params.npz"],
    "rvm": [FIXTURES / "rvm" / "tiny_stream" / "params.npz"],
}
USAGE_RELEASE = {"fourds_backbone": "4ds-b-dist-e", "fourds_depth": "4ds-b-dist-e-scannet-depth",
                 "moog_points": "moog-point-tracking", "rvm": "rvm-s"}


@pytest.mark.parametrize("usage", list(SNIPPET_FOLDERS))
def test_card_usage_snippet_runs_on_a_small_published_folder(tmp_path, usage, capsys):
    release = RELEASES[USAGE_RELEASE[usage]]
    out = tmp_path / "repo"
    publish(SNIPPET_FOLDERS[usage], repo_id=release.repo_id, output_dir=out, release=release)
    snippet = USAGE[usage].replace("{repo_id}", release.repo_id)
    card_text = (out / "README.md").read_text()
    assert snippet in card_text, "the card shows exactly the snippet that is tested"
    torch.manual_seed(0)
    exec(compile(snippet.replace(f'"{release.repo_id}"', repr(str(out))), f"<{usage} snippet>", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip(), "the snippet prints its results"
