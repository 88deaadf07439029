"""Publishing: model cards for the twelve releases (with the papers' published results as model-index), `rep4d
publish` folders (real weights for the small releases, shape only dry runs for all twelve), the push path with the
upload mocked, and the cards' usage snippets run for real.

Which releases are exercised how:
- every release (all twelve, 4DS-e's 3.8B included): dry-run publish from the manifest shapes (meta device, no
  weights): card, config + auto_map + custom_pipelines, processor config, code, weights_plan.json (the Omnivorous
  DINOv2 releases: a plain transformers folder, no code, no auto_map);
- every card's model-index: parsed back with huggingface_hub, the expected number of results, each with its table;
- MooG box tracking (backbone + released box head, 30.8M parameters): a real publish from synthetic .npz files with
  the manifests' exact keys and shapes, reloaded and compared array by array;
- Omnivorous DINOv2: a real publish of the tiny golden-fixture ViT, loaded with transformers' AutoModel /
  AutoImageProcessor only and checked against the official outputs;
- the usage snippets: run against tiny converted folders of the same code (4DS backbone and depth, MooG point
  tracking, RVM, Omnivorous DINOv2), with the repo id replaced by the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

import rep4d  # noqa: F401
from rep4d.cards import USAGE
from rep4d.cli import main as cli_main
from rep4d.publishing import RELEASES, publish, resolve_release, write_release_cards
from rep4d.releases import RELEASES as DOWNLOADS
from rep4d.releases import release_files

from testing_utils import FIXTURES, MANIFESTS

REPO_ROOT = Path(__file__).resolve().parent.parent
CARDS = REPO_ROOT / "model_cards"


def test_every_release_has_a_card_that_is_up_to_date(tmp_path):
    assert list(RELEASES) == list(DOWNLOADS) and len(RELEASES) == 12  # one table of release names
    write_release_cards(tmp_path)
    assert sorted(path.name for path in CARDS.iterdir() if (path / "README.md").is_file()) == sorted(RELEASES)
    for name, release in RELEASES.items():
        committed = (CARDS / name / "README.md").read_text()
        assert (tmp_path / name / "README.md").read_text() == committed, f"run python model_cards/generate.py ({name})"
        card = ModelCard.load(CARDS / name / "README.md")
        data = card.data.to_dict()
        assert data["library_name"] == "transformers" and data["license"] == "cc-by-4.0"
        assert ("custom_code" in data["tags"]) == release.remote_code
        if release.paper.arxiv:
            assert f"arxiv:{release.paper.arxiv}" in data["tags"]
        else:  # no arXiv id is known for the Omnivorous release: none is invented
            assert not any(tag.startswith("arxiv:") for tag in data["tags"]) and "arxiv.org" not in card.text
        assert data.get("pipeline_tag") == release.pipeline_tag
        assert f"{release.num_parameters_from_manifests():,}" in card.text
        assert "## Limitations" in card.text and "## Input format" in card.text and "```python" in card.text
        for filename, url in release.urls():
            assert f"[`{filename}`]({url})" in card.text


def test_publishing_takes_names_files_and_urls_from_the_download_table():
    for name, release in RELEASES.items():
        download = DOWNLOADS[name]
        assert release.download is download and release.method == download.method
        assert release.files == tuple(entry.file.filename for entry in release_files(download))
        assert [url for _, url in release.urls()] == [
            f"https://storage.googleapis.com/representations4d/checkpoints/{file}" for file in release.files]
        assert all(path.is_file() for path in release.manifest_paths())
    # the former publishing names still find their release (without being listed)
    assert RELEASES["moog-point-tracking"] is RELEASES["moog-points"]
    assert resolve_release("4ds-b-dist-e-scannet-depth").name == "4ds-b-dist-e-depth"
    assert "moog-backbone" not in RELEASES
    with pytest.raises(ValueError, match="unknown release 'nope'; known: 4ds-b-dist-e"):
        resolve_release("nope")


def test_card_metadata_for_heads_names_base_model_and_datasets():
    data = ModelCard.load(CARDS / "4ds-b-dist-e-depth" / "README.md").data.to_dict()
    assert data["base_model"] == "rep4d/4ds-b-dist-e" and data["datasets"] == ["ScanNet"]
    assert ModelCard.load(CARDS / "moog-points" / "README.md").data.base_model == "rep4d/moog"
    assert ModelCard.load(CARDS / "omnivorous-dinov2-b" / "README.md").data.base_model == "rep4d/frozen-dinov2-b"


# release -> (number of model-index results, the tables they come from)
EXPECTED_RESULTS = {
    "4ds-b-dist-e": (6, {"Table 2"}), "4ds-e": (24, {"Table 2", "Table 3", "Table 9"}),
    "4ds-b-dist-e-depth": (1, {"Table 2"}), "moog": (13, {"Table 1", "Table 2", "Table 3", "Table 4"}),
    "moog-points": (6, {"Table 1", "Table 2", "Table 3"}), "moog-boxes": (4, {"Table 1", "Table 2"}),
    "rvm-s": (0, set()), "rvm-b": (0, set()), "rvm-l": (0, set()), "rvm-h": (0, set()),
    "omnivorous-dinov2-b": (0, set()), "frozen-dinov2-b": (0, set()),
}


@pytest.mark.parametrize("name", list(EXPECTED_RESULTS))
def test_card_model_index_parses_with_the_papers_results(name):
    from huggingface_hub import metadata_load

    assert set(EXPECTED_RESULTS) == set(RELEASES)
    path = CARDS / name / "README.md"
    count, tables = EXPECTED_RESULTS[name]
    results = ModelCard.load(path).data.eval_results or []
    assert len(results) == count
    metadata = metadata_load(path)
    if count == 0:
        assert "model-index" not in metadata
        return
    (entry,) = metadata["model-index"]
    assert entry["name"] == RELEASES[name].title
    assert sum(len(group["metrics"]) for group in entry["results"]) == count
    paper = RELEASES[name].paper
    found = set()
    for result in results:
        assert result.source_url == paper.url and result.source_name.startswith(paper.title.split(":")[0])
        table = result.source_name.split(", ")[1].split(" (")[0]
        found.add(table)
        assert result.dataset_config in ("frozen", "fine-tuned-20k", "fine-tuned-40k", "fine-tuned-80k", "end-to-end",
                                         "end-to-end-8-frames", "end-to-end-full-length")
        assert isinstance(result.metric_value, float) and result.metric_value > 0
        if name.startswith("moog"):  # the paper's MooG models are not the released weights: every source says so
            assert "not the released ego4d checkpoints" in result.source_name
    assert found == tables
    # every group keeps its own table: no two results of one table share a task, dataset and setting
    keys = [(r.task_type, r.dataset_type, r.dataset_config, r.metric_type) for r in results]
    assert len(keys) == len(set(keys))


def _result(name, dataset, config):
    (result,) = [r for r in ModelCard.load(CARDS / name / "README.md").data.eval_results
                 if r.dataset_type == dataset and r.dataset_config == config]
    return result


def test_card_values_and_units_follow_the_tables():
    # ScanNet AbsRel: the 4DS tables print it x10 (1.21 for 4DS-B-dist-e): the cards give the real AbsRel.
    depth = _result("4ds-b-dist-e-depth", "scannet", "frozen")
    assert depth.metric_value == 0.121 and "Table 2" in depth.source_name
    assert _result("4ds-b-dist-e", "scannet", "frozen").metric_value == 0.121
    assert _result("4ds-e", "scannet", "fine-tuned-80k").metric_value == 0.065
    # percent stays percent, raw stays raw, Table 9 columns reordered correctly
    assert _result("4ds-e", "something_something_v2", "frozen").metric_value == 64.3
    assert _result("4ds-e", "kinetics700_2020", "fine-tuned-40k").metric_value == 55.2
    assert _result("4ds-e", "realestate10k", "fine-tuned-20k").metric_value == 0.28
    assert _result("4ds-b-dist-e", "perception_test", "frozen").metric_value == 81.4
    assert _result("moog-points", "davis", "end-to-end-full-length").metric_value == 0.51
    assert _result("moog", "waymo_open_dataset", "frozen").metric_value == 0.73
    text = (CARDS / "4ds-b-dist-e-depth" / "README.md").read_text()
    assert "x10" in text and "0.121" in text and "1.21" in text


def test_cards_state_the_protocol_and_what_the_numbers_are_for():
    for name in ("4ds-b-dist-e", "4ds-e", "4ds-b-dist-e-depth"):
        text = (CARDS / name / "README.md").read_text()
        assert "## Evaluation protocol" in text and "**95% of the depth**" in text and "**75%**" in text
        assert "16-frame clip" in text and "Frozen backbone" in text
    assert "no fine-tuning row" in (CARDS / "4ds-b-dist-e" / "README.md").read_text()
    for name in ("moog", "moog-points", "moog-boxes"):
        text = (CARDS / name / "README.md").read_text()
        assert "trained on Kubric MOVi-E" in text and "no result for the released" in text
    for name in ("rvm-s", "rvm-b", "rvm-l", "rvm-h"):
        assert "No RVM results are available here" in (CARDS / name / "README.md").read_text()
    omnivorous = (CARDS / "omnivorous-dinov2-b" / "README.md").read_text()
    assert "No results are available here" in omnivorous and "trust_remote_code=True" not in omnivorous


EXPECTED_CLASS = {
    "4ds-b-dist-e": "FourDSModel", "4ds-e": "FourDSModel", "4ds-b-dist-e-depth": "FourDSForDepthEstimation",
    "moog": "MooGModel", "moog-points": "MooGForPointTracking",
    "moog-boxes": "MooGForBoxTracking", "rvm-s": "RVMForMaskedReconstruction",
    "rvm-b": "RVMForMaskedReconstruction", "rvm-l": "RVMForMaskedReconstruction", "rvm-h": "RVMForMaskedReconstruction",
    "omnivorous-dinov2-b": "Dinov2WithRegistersModel", "frozen-dinov2-b": "Dinov2WithRegistersModel",
}


@pytest.mark.parametrize("name", list(RELEASES))
def test_dry_run_publish_of_every_release_from_manifest_shapes(tmp_path, name):
    release = RELEASES[name]
    out = tmp_path / name
    result = publish(shapes=release.shapes(), repo_id=release.repo_id, output_dir=out, dry_run=True)
    assert result.release is release and result.model_class == EXPECTED_CLASS[name]
    counts = result.parameter_counts
    assert counts.model == result.num_parameters and counts.released == release.num_parameters_from_manifests()
    files = {path.name for path in out.iterdir()}
    assert {"README.md", "config.json", "weights_plan.json"} <= files
    assert ("pipelines.py" in files) == bool(release.pipeline_tasks)
    assert not any(file.endswith(".safetensors") for file in files), "a dry run writes no weights"
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [EXPECTED_CLASS[name]]
    if not release.remote_code:  # Omnivorous DINOv2: transformers' own classes, a plain folder
        assert config["model_type"] == "dinov2_with_registers" and "auto_map" not in config
        assert not any(file.endswith(".py") for file in files) and "preprocessor_config.json" in files
        assert counts.model > counts.read == counts.released  # + unit LayerScale, zero mask token and class row
        return
    assert counts.model == counts.read
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

    release = RELEASES["moog-boxes"]
    files = [synthetic_npz(tmp_path / name, manifest, seed)
             for seed, (name, manifest) in enumerate(zip(release.files, release.manifest_paths()))]
    out = tmp_path / "moog-boxes"
    result = publish(files, repo_id="rep4d/moog-boxes", output_dir=out)
    assert result.release is release and not result.dry_run
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    model = MooGForBoxTracking.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == release.num_parameters_from_manifests()
    head = np.load(files[1], allow_pickle=False)
    key = next(k for k in head.files if k.endswith("Dense_0/bias"))
    assert any(np.array_equal(head[key], tensor.numpy()) for tensor in model.state_dict().values()
               if tuple(tensor.shape) == head[key].shape)


def test_real_publish_of_omnivorous_is_a_plain_transformers_folder(tmp_path):
    """`rep4d publish` of an Omnivorous file: weights + config + image processor + card, no code; it loads with
    transformers' Auto classes alone (no trust_remote_code) and reproduces the official outputs."""
    import shutil

    from transformers import AutoImageProcessor, AutoModel

    case = FIXTURES / "omnivorous" / "tiny_vit"
    released = tmp_path / "omnivorous_dinov2-vit_b.safetensors"  # the released name tells the release
    shutil.copy(case / json.loads((case / "case.json").read_text())["params_file"], released)
    out = tmp_path / "omni"
    assert cli_main(["publish", str(released), "--repo-id", "me/omni", "--output", str(out), "--quiet"]) == 0
    files = {path.name for path in out.iterdir()}
    assert files == {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and config["model_type"] == "dinov2_with_registers"
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction" and card.data.base_model == "rep4d/frozen-dinov2-b"
    assert "custom_code" not in card.data.tags and "Dinov2WithRegistersModel" in card.text
    model = AutoModel.from_pretrained(out).eval()
    assert type(model).__name__ == "Dinov2WithRegistersModel"
    assert AutoImageProcessor.from_pretrained(out, backend="pil").size == {"height": 224, "width": 224}
    image = np.load(case / "inputs.npz")["image"]
    expected = np.load(case / "outputs.npz")["final_tokens"]
    with torch.inference_mode():
        tokens = model(pixel_values=torch.from_numpy(image).permute(0, 3, 1, 2)).last_hidden_state
    np.testing.assert_allclose(tokens.numpy(), expected, rtol=0, atol=5e-5)  # the fixture README's tolerance


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
                     "--output", str(tmp_path / "w")]) == 2  # wrong input: exit status 2
    assert not (tmp_path / "w").exists()


SNIPPET_FOLDERS = {
    "fourds_backbone": [FIXTURES / "4ds" / "tiny_backbone" / "params.npz"],
    "fourds_depth": [FIXTURES / "4ds" / "tiny_depth" / "params.npz"],
    "moog_points": [FIXTURES / "moog" / "tiny_points" / "backbone_params.npz",
                    FIXTURES / "moog" / "tiny_points" / "point_head_params.npz"],
    "rvm": [FIXTURES / "rvm" / "tiny_stream" / "params.npz"],
    "omnivorous": [FIXTURES / "omnivorous" / "tiny_vit" / "params.safetensors"],
}
USAGE_RELEASE = {"fourds_backbone": "4ds-b-dist-e", "fourds_depth": "4ds-b-dist-e-depth",
                 "moog_points": "moog-points", "rvm": "rvm-s", "omnivorous": "omnivorous-dinov2-b"}


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
