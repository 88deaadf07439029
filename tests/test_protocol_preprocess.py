"""Every ``protocols/preprocess`` fixture case through the public processor API and through ``run_parity``.

The cases are found on disk: any case in the same format (other videos, sizes, frame counts) is run the same way,
with every parameter read from its case.json.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rep4d.parity import load_case_arrays, run_parity
from rep4d.parity.protocols.preprocess import float_input_sha256, processor_for_case
from rep4d.processing import FourDSVideoProcessor, RVMVideoProcessor
from rep4d.processing.video_processing_base import read_video_pyav

CASES_ROOT = Path(__file__).parent / "fixtures" / "protocols" / "preprocess"
CASES = sorted(path for path in CASES_ROOT.iterdir() if (path / "case.json").is_file())


def load(case_dir: Path) -> dict:
    return json.loads((case_dir / "case.json").read_text())


def test_the_visible_cases_are_found():
    assert {path.name for path in CASES} >= {"fourds_depth_demo", "rvm_inference_demo", "davis_480x880",
                                              "jhmdb_320x320", "vip_448x880"}


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_case_through_the_public_processor(case_dir):
    case = load(case_dir)
    reference = load_case_arrays(case_dir / "outputs.npz")["video_uint8"]
    processor = processor_for_case(case)
    pixel_values = processor(str(case_dir / case["video"]), return_tensors="pt")["pixel_values"]
    assert pixel_values.dtype.is_floating_point and pixel_values.shape[0] == 1
    frames = pixel_values[0].permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.round(frames * 255).astype(np.uint8), reference)
    # The float32 model input itself, hashed in the case's layout (channels last, C order).
    assert int(np.prod(case["model_input_shape"])) == frames.size
    assert float_input_sha256(pixel_values) == case["model_input_sha256"]


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_case_through_run_parity(case_dir):
    report = run_parity(case_dir)
    assert report.method == "preprocess" and report.not_compared == []
    assert report.ok, report.to_json()
    assert report.results["video_uint8"].tolerance.exact


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_pyav_decodes_the_clip_as_the_notebooks_do(case_dir):
    case = load(case_dir)
    frames, metadata = read_video_pyav(str(case_dir / case["video"]))
    assert list(frames.shape) == case["decoded_shape"]
    assert [hashlib.sha256(frame.tobytes()).hexdigest() for frame in frames] == case["decoded_frames_sha256"]


def test_the_named_protocols_reproduce_the_visible_cases():
    """The processors users build by name give the official inputs (no case.json involved)."""
    named = {
        "fourds_depth_demo": FourDSVideoProcessor(),
        "rvm_inference_demo": RVMVideoProcessor(),
        "davis_480x880": RVMVideoProcessor.from_protocol("davis"),
        "jhmdb_320x320": RVMVideoProcessor.from_protocol("jhmdb"),
        "vip_448x880": RVMVideoProcessor.from_protocol("vip"),
    }
    for name, processor in named.items():
        case_dir = CASES_ROOT / name
        reference = load_case_arrays(case_dir / "outputs.npz")["video_uint8"]
        pixel_values = processor(str(case_dir / "video.mp4"), return_tensors="pt")["pixel_values"]
        np.testing.assert_array_equal(np.round(pixel_values[0].permute(0, 2, 3, 1).numpy() * 255), reference)


def test_a_cropping_or_uniformly_sampling_processor_fails_the_case():
    """The comparison can fail: the 4DS paper's crop geometry and the old uniform sampling both miss."""
    case_dir = CASES_ROOT / "fourds_depth_demo"
    reference = load_case_arrays(case_dir / "outputs.npz")["video_uint8"].astype(np.float64)
    for processor in (FourDSVideoProcessor.from_protocol("4ds-eval"), FourDSVideoProcessor(frame_sampling="uniform")):
        out = processor(str(case_dir / "video.mp4"), return_tensors="pt")["pixel_values"][0].permute(0, 2, 3, 1)
        assert np.abs(np.round(out.numpy() * 255) - reference).mean() > 1.0


def test_unknown_case_kinds_are_refused_in_one_line():
    case = {**load(CASES_ROOT / "davis_480x880"), "kind": "kinetics"}
    with pytest.raises(ValueError, match="unknown preprocess case kind 'kinetics'; known kinds: fourds, "):
        processor_for_case(case)
    with pytest.raises(ValueError, match="cannot read the frame selection"):
        processor_for_case({**case, "kind": "davis", "frame_selection": "every other frame"})
