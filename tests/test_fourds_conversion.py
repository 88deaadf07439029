"""Conversion of 4DS checkpoints: manifests of the released files, CLI, atomic output, sharding, remote code."""

import json
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from transformers import AutoModelForDepthEstimation, AutoVideoProcessor

import rep4d  # noqa: F401
from rep4d.conversion import (
    ConversionError,
    NpzCheckpoint,
    convert_checkpoint,
    get_converter,
    identify_checkpoint,
    plan_conversion,
    read_manifest,
)
from rep4d.modeling import FourDSForDepthEstimation, FourDSModel
from rep4d.parity import load_case_arrays
from rep4d.remote_code import export_remote_code

from testing_utils import FIXTURES, MANIFESTS, run_isolated_python

RELEASED_4DS = sorted((MANIFESTS / "4ds").glob("*.json"))
EXPECTED = {
    "scaling4d_dist_b.json": (FourDSModel, "4DS-B-dist-e (scaling4d_dist_b.npz)"),
    "scaling4d_dist_b_depth.json": (FourDSForDepthEstimation, "4DS-B-dist-e ScanNet depth (scaling4d_dist_b_depth.npz)"),
    "scaling4d_e.json": (FourDSModel, "4DS-e (scaling4d_e.npz)"),
}
DEPTH_CASE = FIXTURES / "4ds" / "tiny_depth"


@pytest.mark.parametrize("manifest", RELEASED_4DS, ids=lambda path: path.stem)
def test_released_manifest_maps_every_key_and_every_parameter(manifest):
    shapes = read_manifest(manifest)
    info = json.loads(manifest.read_text())
    converter, variant = identify_checkpoint(shapes)
    assert converter.method == "fourds"
    assert converter.variant_description(variant, shapes) == EXPECTED[manifest.name][1]
    plan = plan_conversion(shapes, converter, variant)  # meta device: nothing allocated
    assert plan.model_class is EXPECTED[manifest.name][0]
    used = {key for src in plan.sources.values() for key in src.keys}
    ignored = converter.ignored_keys(shapes, plan.config, variant)
    assert used | ignored == set(shapes) and not used & ignored, "every checkpoint key is used or deliberately ignored"
    assert set(plan.sources) == set(plan.target_shapes), "every model parameter has a source"
    assert plan.num_parameters + sum(math.prod(shapes[key]) for key in ignored) == info["num_params"]
    # Only the depth model leaves arrays out: the blocks above its readout layer (10 and 11 of B), which it never runs.
    assert {key.split("/")[3] for key in ignored} == ({"layers_10", "layers_11"} if variant == "depth" else set())
    if variant == "depth":
        assert plan.config.readout_decoding_patch_size == [2, 8, 8]
        assert plan.config.readout_num_params == 1024 and plan.config.readout_num_heads == 16


def test_released_depth_manifest_infers_the_demo_configuration():
    shapes = read_manifest(MANIFESTS / "4ds" / "scaling4d_dist_b_depth.json")
    config = get_converter("fourds").build_config(shapes, "depth")
    assert (config.num_frames, config.image_size, config.tubelet_size) == (16, [224, 224], [2, 16, 16])
    assert config.readout_depth == 0.95


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def test_converters_and_parity_runners_load_lazily_not_on_import():
    """`import rep4d` registers the Auto classes only; converters and parity runners are found through their tables."""
    code = """
import sys
import rep4d
from transformers import AutoConfig
lazy = ("rep4d.modeling.convert_", "rep4d.parity")
assert not [name for name in sys.modules if name.startswith(lazy)], sorted(n for n in sys.modules if n.startswith(lazy))
assert AutoConfig.for_model("fourds").model_type == "fourds"
from rep4d.conversion import CONVERTERS, get_converter
assert [get_converter(method).method for method in CONVERTERS] == list(CONVERTERS)
import importlib
from rep4d.parity import PARITY_RUNNERS
for module in PARITY_RUNNERS.values():
    runner = importlib.import_module(module)
    assert callable(runner.accepts_case) and callable(runner.run_case), module
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    with pytest.raises(ConversionError, match="unknown method 'jax'; known: fourds, moog, omnivorous, rvm"):
        get_converter("jax")


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path):
    params = load_case_arrays(DEPTH_CASE / "params.npz")
    broken = dict(params)
    missing_key = "params/layers_0/processor/layers_1/mlp/dense_in/bias"
    del broken[missing_key]
    broken["params/layers_2/extra/kernel"] = np.zeros(3, np.float32)
    shaped_key = "params/layers_0/processor/layers_0/attention/out/bias"
    broken[shaped_key] = np.zeros(7, np.float32)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as error:
        convert_checkpoint(write_npz(tmp_path / "broken.npz", broken), out)
    message = str(error.value)
    assert missing_key in message and "params/layers_2/extra/kernel" in message and shaped_key in message
    assert not out.exists(), "a failed conversion leaves nothing behind"
    assert [p.name for p in tmp_path.iterdir()] == ["broken.npz"]


def test_failure_while_writing_leaves_no_partial_output(tmp_path, monkeypatch):
    import rep4d.conversion as conversion

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(conversion, "write_safetensors_streaming", fail)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(DEPTH_CASE / "params.npz", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"params/encoder/x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ConversionError, match="refusing to unpickle"):
        _ = NpzCheckpoint(path).shapes
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["params/encoder/x.npy"]


def test_cli_converts_to_a_loadable_folder_matching_parity(tmp_path):
    out = tmp_path / "4ds-depth"
    result = subprocess.run(
        [sys.executable, "-m", "rep4d", "convert", str(DEPTH_CASE / "params.npz"), "-o", str(out), "--quiet"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "video_preprocessor_config.json"}
    model = AutoModelForDepthEstimation.from_pretrained(out).eval()
    assert type(model) is FourDSForDepthEstimation
    video = load_case_arrays(DEPTH_CASE / "inputs.npz")["video"]
    reference = load_case_arrays(DEPTH_CASE / "outputs.npz")["output"][..., 0]
    with torch.no_grad():
        depth = model(torch.from_numpy(video).permute(0, 1, 4, 2, 3)).predicted_depth.numpy()
    assert np.abs(depth - reference).max() <= 5e-5
    processor = AutoVideoProcessor.from_pretrained(out)
    assert processor.num_frames == 4 and processor.crop_size["height"] == 32

    again = subprocess.run(
        [sys.executable, "-m", "rep4d", "convert", str(DEPTH_CASE / "params.npz"), "-o", str(out), "--quiet"],
        capture_output=True, text=True,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr  # wrong input: exit status 2


def test_cli_dry_run_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "rep4d", "convert", str(DEPTH_CASE / "params.npz"), "--dry-run"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    # The case's 179,744 parameters less blocks 2-3 (of 4), above the readout layer: the depth model leaves them out.
    assert "FourDSForDepthEstimation, 112,800 parameters" in result.stdout
    help_text = subprocess.run([sys.executable, "-m", "rep4d", "convert", "--help"], capture_output=True, text=True)
    assert "examples:" in help_text.stdout and "--max-shard-size" in help_text.stdout


def test_sharded_output_loads_identically(tmp_path):
    single = tmp_path / "single"
    sharded = tmp_path / "sharded"
    convert_checkpoint(DEPTH_CASE / "params.npz", single)
    result = convert_checkpoint(DEPTH_CASE / "params.npz", sharded, max_shard_size="100KB")
    shards = [name for name in result.files if name.endswith(".safetensors")]
    assert len(shards) > 3 and "model.safetensors.index.json" in result.files
    a = FourDSForDepthEstimation.from_pretrained(single)
    b = FourDSForDepthEstimation.from_pretrained(sharded)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_overrides_and_preset_conflicts(tmp_path):
    shapes = {k: tuple(v.shape) for k, v in load_case_arrays(DEPTH_CASE / "params.npz").items()}
    converter = get_converter("fourds")
    config = converter.build_config(shapes, "depth", readout_depth=0.75)
    assert config.readout_depth == 0.75
    with pytest.raises(ConversionError, match="does not match the checkpoint"):
        converter.build_config(shapes, "depth", preset="b")


@pytest.mark.slow
def test_remote_code_export_loads_without_rep4d(tmp_path):
    out = tmp_path / "repo"
    convert_checkpoint(DEPTH_CASE / "params.npz", out)
    written = export_remote_code(out)
    assert {"modeling_fourds.py", "configuration_fourds.py", "layers.py", "video_processing_fourds.py"} <= set(written)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_fourds.FourDSConfig",
        "AutoModel": "modeling_fourds.FourDSModel",
        "AutoModelForDepthEstimation": "modeling_fourds.FourDSForDepthEstimation",
        "AutoModelForPreTraining": "modeling_fourds.FourDSForPreTraining",
    }
    video = load_case_arrays(DEPTH_CASE / "inputs.npz")["video"]
    np.save(tmp_path / "video.npy", video)
    code = f"""
import numpy as np, torch
from transformers import AutoModel, AutoModelForDepthEstimation, AutoVideoProcessor
repo = {str(out)!r}
model = AutoModelForDepthEstimation.from_pretrained(repo, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
backbone = AutoModel.from_pretrained(repo, trust_remote_code=True)
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)
video = np.load({str(tmp_path / "video.npy")!r})
with torch.no_grad():
    depth = model(torch.from_numpy(video).permute(0, 1, 4, 2, 3)).predicted_depth
np.save({str(tmp_path / "remote.npy")!r}, depth.numpy())
frames = (video[0] * 255).round().astype("uint8")
print("processed", tuple(processor(frames, return_tensors="pt")["pixel_values"].shape))
"""
    result = run_isolated_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "processed (1, 4, 3, 32, 32)" in result.stdout
    local = FourDSForDepthEstimation.from_pretrained(out).eval()
    with torch.no_grad():
        expected = local(torch.from_numpy(video).permute(0, 1, 4, 2, 3)).predicted_depth.numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), expected)


def test_streamed_safetensors_read_back_with_the_safetensors_library(tmp_path):
    from safetensors import safe_open

    from rep4d.conversion import write_safetensors_streaming

    tensors = {"a": torch.randn(3, 5), "b": torch.arange(7, dtype=torch.int64), "c": torch.randn(2, 2).bfloat16()}
    entries = [(name, tuple(t.shape), t.dtype) for name, t in tensors.items()]
    write_safetensors_streaming(tmp_path / "x.safetensors", entries, iter(tensors.items()), metadata={"format": "pt"})
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
        for name, tensor in tensors.items():
            torch.testing.assert_close(handle.get_tensor(name), tensor, rtol=0, atol=0)
