"""Omnivorous DINOv2: released-file key maps, conversion onto transformers' Dinov2WithRegistersModel, golden-fixture
parity, the notebook's pre-processing, alignment score, PCA picture and the ``rep4d omnivorous`` command."""

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file
from transformers import AutoImageProcessor, AutoModel, Dinov2WithRegistersModel

import rep4d.modeling.convert_omnivorous as convert_omnivorous
from rep4d.cli import main
from rep4d.conversion import (
    ConversionError,
    SafetensorsCheckpoint,
    identify_checkpoint,
    plan_conversion,
    read_manifest,
)
from rep4d.omnivorous import (
    alignment_score,
    normalize_image,
    pca_image,
    preprocess_image,
    render_demo_picture,
    run_demo,
)
from rep4d.parity import load_case_arrays, run_parity
from rep4d.parity.omnivorous import build_model

from testing_utils import FIXTURES, MANIFESTS, fixture_cases, run_isolated_python

CASES = fixture_cases("omnivorous")
DEMO = FIXTURES / "omnivorous" / "tiny_demo_hypersim"
INTERP = FIXTURES / "omnivorous" / "tiny_vit_interp"
RELEASED = ["frozen_dinov2-vit_b", "omnivorous_dinov2-vit_b"]


def test_visible_cases_exist():
    assert {case.name for case in CASES} >= {"tiny_vit", "tiny_vit_interp", "posemb_interp", "tiny_demo_hypersim"}


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_parity(case_dir):
    report = run_parity(case_dir)
    assert report.method == "omnivorous"
    assert report.not_compared == [], f"outputs not produced by the port: {report.not_compared}"
    failures = {key: r.max_abs_error for key, r in report.results.items() if not r.ok}
    assert not failures, f"outside the README tolerance: {failures}"
    for key, result in report.results.items():  # the fixture README's tolerances, never looser
        expected = 1e-5 if key.endswith("score") else 1e-4 if key.endswith("_pca") else 5e-5
        assert result.tolerance.atol == expected and result.tolerance.rtol == 0, key
        assert result.tolerance.flip_channels == key.endswith("_pca")


def test_pca_comparison_detects_wrong_images():
    from rep4d.parity import Tolerance, compare

    rng = np.random.default_rng(0)
    reference = rng.random((4, 4, 3))
    flipped = reference.copy()
    flipped[..., 1] = 1 - flipped[..., 1]
    tolerance = Tolerance(atol=1e-4, flip_channels=True)
    assert compare(flipped, reference, tolerance).ok
    assert not compare(flipped, reference, Tolerance(atol=1e-4)).ok
    assert not compare(rng.random((4, 4, 3)), reference, tolerance).ok
    half = flipped.copy()
    half[:2, :, 0] = 1 - half[:2, :, 0]  # a flip must apply to a whole channel, not element by element
    assert not compare(half, reference, tolerance).ok


@pytest.mark.parametrize("name", RELEASED)
def test_released_manifest_maps_fully_on_meta(name):
    manifest = json.loads((MANIFESTS / "omnivorous" / f"{name}.json").read_text())
    assert manifest == json.loads((FIXTURES / "omnivorous" / "manifests" / f"{name}.json").read_text())
    shapes = read_manifest(MANIFESTS / "omnivorous" / f"{name}.json")
    assert len(shapes) == manifest["num_arrays"] == 198
    converter, variant = identify_checkpoint(shapes)
    assert converter.method == "omnivorous"
    assert f"{name}.safetensors" in converter.variant_description(variant, shapes)
    plan = plan_conversion(shapes, converter, variant)  # every key, every shape, on the meta device
    assert plan.model_class is Dinov2WithRegistersModel
    used = {key for src in plan.sources.values() for key in src.keys}
    assert used == set(shapes)
    assert sum(math.prod(shapes[key]) for key in used) == manifest["num_params"] == 86_560_512
    # the only parameters not read from the file: zero class-position row, zero mask token, unit LayerScale
    config = plan.config
    added = config.hidden_size * (1 + 1 + 2 * config.num_hidden_layers)
    assert plan.num_parameters - added == manifest["num_params"]
    assert (config.num_register_tokens, config.hidden_act, config.layerscale_value, config.layer_norm_eps) == (
        0, "gelu_pytorch_tanh", 1.0, 1e-6)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.mlp_ratio) == (
        768, 12, 12, 4)
    assert (config.image_size, config.patch_size) == (518, 14)


def test_mapping_reports_missing_and_misshapen_keys():
    shapes = read_manifest(MANIFESTS / "omnivorous" / "omnivorous_dinov2-vit_b.json")
    converter, variant = identify_checkpoint(shapes)
    broken = dict(shapes)
    del broken["encoderblock_3.MlpBlock_0.Dense_1.bias"]
    broken["encoderblock_0.MultiHeadDotProductAttention_0.out.kernel"] = (12, 64, 700)
    with pytest.raises(ConversionError) as error:
        plan_conversion(broken, converter, variant)
    assert "encoderblock_3.MlpBlock_0.Dense_1.bias" in str(error.value)
    assert "o_proj.weight" in str(error.value)


def test_config_limits_are_clear_errors():
    with pytest.raises(ConversionError, match="not square"):
        convert_omnivorous.dinov2_config(width=32, depth=1, heads=2, mlp=64, patch_size=4, posemb_grid=[6, 8])
    with pytest.raises(ConversionError, match="integer mlp_ratio"):
        convert_omnivorous.dinov2_config(width=24, depth=1, heads=2, mlp=60, patch_size=4, posemb_grid=[6, 6])
    config = convert_omnivorous.dinov2_config(width=24, depth=1, heads=2, mlp=60, patch_size=[4, 6],
                                              posemb_grid=[6, 6], allow_fractional_mlp_ratio=True)
    model = Dinov2WithRegistersModel(config)
    assert model.encoder.layer[0].mlp.fc1.out_features == 60
    assert tuple(model.embeddings.patch_embeddings.patch_size) == (4, 6)
    with torch.no_grad():  # VALID patching: the 2 and 4 remainder pixels are dropped, 6x6 grid = the table
        assert model(torch.zeros(1, 3, 26, 40)).last_hidden_state.shape == (1, 37, 24)


def _release_named(tmp_path, case_dir, params_file, name):
    path = tmp_path / name
    shutil.copy(case_dir / params_file, path)
    return path


def test_convert_cli_gives_a_plain_transformers_folder(tmp_path):
    checkpoint = _release_named(tmp_path, INTERP, "params.safetensors", "omnivorous_dinov2-vit_b.safetensors")
    reader = SafetensorsCheckpoint(checkpoint)
    assert reader.shapes["ToTokenSequence_0.posembed_input"] == (1, 37, 37, 32)
    out = tmp_path / "omnivorous-tiny"
    assert main(["convert", str(checkpoint), "-o", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json"}
    model = AutoModel.from_pretrained(out).eval()
    assert type(model) is Dinov2WithRegistersModel
    image = load_case_arrays(INTERP / "inputs.npz")["image"]
    reference = load_case_arrays(INTERP / "outputs.npz")
    with torch.no_grad():
        result = model(torch.from_numpy(image).permute(0, 3, 1, 2))
    assert np.abs(result.last_hidden_state.numpy() - reference["final_tokens"]).max() <= 5e-5
    assert np.abs(result.pooler_output.numpy() - reference["pooled_output"]).max() <= 5e-5
    processor = AutoImageProcessor.from_pretrained(out, backend="pil")
    assert processor.size == {"height": 224, "width": 224} and not processor.do_center_crop
    # the target exists: refused (exit status 2), nothing replaced
    assert main(["convert", str(checkpoint), "-o", str(out), "--quiet"]) == 2
    assert (out / "model.safetensors").is_file()


def test_converted_folder_needs_no_rep4d(tmp_path):
    out = tmp_path / "student"
    checkpoint = _release_named(tmp_path, DEMO, "params_student.safetensors", "omnivorous_dinov2-vit_b.safetensors")
    assert main(["convert", str(checkpoint), "-o", str(out), "--quiet"]) == 0
    code = (
        "import numpy as np, torch\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(out)!r}).eval()\n"
        "assert type(model).__name__ == 'Dinov2WithRegistersModel', type(model)\n"
        "with torch.no_grad():\n"
        "    print(model(torch.zeros(1, 3, 224, 224)).last_hidden_state.shape)\n"
    )
    result = run_isolated_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 257, 16])" in result.stdout


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    bad = tmp_path / "omnivorous_dinov2-vit_b.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ConversionError, match="safetensors"):
        SafetensorsCheckpoint(bad)
    assert main(["convert", str(bad), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert not (tmp_path / "out").exists()


def test_demo_preprocessing_is_bit_exact():
    # The demo assets (case.json["assets"]) are not in the repository; the stored 224x224 images are the notebook's
    # PIL-resized inputs, so resizing them to 224x224 is the identity and the model input must match byte for byte.
    case = json.loads((DEMO / "case.json").read_text())
    inputs = load_case_arrays(DEMO / "inputs.npz")
    for name, key in (("rgb", "rgb_input"), ("aux", "aux_input")):
        u8 = inputs[f"{name}_resized_u8"]
        expected = case["model_input_sha256_float32"][key]
        assert hashlib.sha256(normalize_image(u8).tobytes()).hexdigest() == expected
        assert hashlib.sha256(preprocess_image(Image.fromarray(u8)).tobytes()).hexdigest() == expected


def test_saved_image_processor_matches_the_notebook():
    processor = convert_omnivorous.image_processor()
    rng = np.random.default_rng(0)
    images = [load_case_arrays(DEMO / "inputs.npz")["rgb_resized_u8"], (rng.random((91, 130, 3)) * 255).astype(np.uint8)]
    for u8 in images:
        ours = preprocess_image(u8)  # (1, 224, 224, 3): squashed, no crop
        theirs = processor(Image.fromarray(u8), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
        assert theirs.shape == ours.shape == (1, 224, 224, 3)
        assert np.abs(theirs - ours).max() <= 1e-6  # float32 rounding of the same arithmetic


def test_bad_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match="8-bit RGB"):
        normalize_image(np.zeros((8, 8), np.uint8))
    with pytest.raises(FileNotFoundError):
        preprocess_image(tmp_path / "missing.png")
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(gray)
    assert preprocess_image(gray).shape == (1, 224, 224, 3)  # converted to RGB first


def test_score_and_pca_behave():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1, 16, 8)).astype(np.float32)
    assert alignment_score(features, features) == pytest.approx(1.0, abs=1e-6)
    assert alignment_score(features, -features) == pytest.approx(-1.0, abs=1e-6)
    assert abs(alignment_score(features, rng.normal(size=(1, 16, 8)))) < 0.5
    with pytest.raises(ValueError):
        alignment_score(features, features[:, :8])
    picture = pca_image(features, (4, 4))
    assert picture.shape == (4, 4, 3) and picture.min() >= 0 and picture.max() <= 1
    assert np.allclose(picture.min(axis=(0, 1)), 0) and np.allclose(picture.max(axis=(0, 1)), 1, atol=1e-6)
    with pytest.raises(ValueError):
        pca_image(features, (3, 4))


def test_demo_function_and_picture(tmp_path):
    reference = load_case_arrays(DEMO / "outputs.npz")
    inputs = load_case_arrays(DEMO / "inputs.npz")
    case = json.loads((DEMO / "case.json").read_text())
    models = {}
    for role in ("teacher", "student"):
        config = convert_omnivorous.config_from_flax(case[role]["config"])
        models[role] = build_model(load_file(str(DEMO / case[role]["params_file"])), config)
    result = run_demo(models, inputs["rgb_resized_u8"], inputs["aux_resized_u8"])
    for role in models:
        assert abs(result.scores[role] - float(reference[f"{role}_score"])) <= 1e-5
        assert result.rgb_pca[role].shape == (16, 16, 3)
    picture = render_demo_picture(result)
    assert picture.width >= 2 * 256 and picture.height >= 3 * 256
    pixels = np.asarray(picture)
    assert pixels.std() > 10  # not blank


def test_omnivorous_command(tmp_path, capsys):
    inputs = load_case_arrays(DEMO / "inputs.npz")
    reference = load_case_arrays(DEMO / "outputs.npz")
    folders = {}
    for role, name in (("teacher", "frozen_dinov2-vit_b"), ("student", "omnivorous_dinov2-vit_b")):
        checkpoint = _release_named(tmp_path, DEMO, f"params_{role}.safetensors", f"{name}.safetensors")
        folders[role] = tmp_path / role
        assert main(["convert", str(checkpoint), "-o", str(folders[role]), "--quiet"]) == 0
    rgb, aux = tmp_path / "rgb.png", tmp_path / "depth.png"
    Image.fromarray(inputs["rgb_resized_u8"]).save(rgb)
    Image.fromarray(inputs["aux_resized_u8"]).save(aux)
    picture = tmp_path / "out" / "demo.png"
    args = ["omnivorous", str(rgb), str(aux), "--model", str(folders["student"]), "--teacher", str(folders["teacher"]),
            "-o", str(picture), "--device", "cpu", "--json"]
    capsys.readouterr()
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["scores"]
    for role in ("teacher", "student"):  # PNG round trip of the 224x224 inputs: the notebook's exact pipeline
        assert abs(scores[role] - float(reference[f"{role}_score"])) <= 1e-5
    with Image.open(picture) as image:
        assert image.width >= 512 and image.height >= 768
    assert [p.name for p in picture.parent.iterdir()] == ["demo.png"]  # nothing partial left beside it

    wrong = tmp_path / "not-omnivorous"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"model_type": "rvm"}))
    assert main(["omnivorous", str(rgb), str(aux), "--model", str(wrong)]) == 2
    assert main(["omnivorous", str(rgb), str(tmp_path / "missing.png"), "--model", str(folders["student"])]) == 2
    assert main(["omnivorous", str(rgb), str(aux), "--model", str(folders["student"]), "--panel-size", "64"]) == 2
