"""Parity runner for ``protocols/preprocess`` fixture cases: a video file in, the official model input out.

A case (``family == "preprocess"``) ships ``video.mp4`` and the frames the official notebook feeds the model
(``outputs.npz["video_uint8"]``, (T, H, W, 3) uint8). The runner builds the method's video processor from
``case.json`` alone (``kind`` names the method/protocol, ``target_size_hw`` the size, ``frame_selection`` the
frames), runs it on the video path through the public ``processor(path, return_tensors="pt")`` call and returns the
uint8 frames behind its float32 ``pixel_values``. The float input is checked too: ``video_uint8`` is returned as
``round(pixel_values * 255)`` only when ``pixel_values`` is bit-for-bit ``that_uint8 / 255`` (the notebooks'
formula; tests also check its sha256 against ``case.json["model_input_sha256"]`` with :func:`float_input_sha256`);
otherwise the unrounded values are returned and the exact comparison fails.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from rep4d.parity import ParityOutputs, Tolerance

#: case.json ``kind`` -> (processor family, protocol name).
KIND_TO_PROTOCOL = {
    "fourds": ("4ds", "4ds-depth-demo"),
    "4ds": ("4ds", "4ds-depth-demo"),
    "fourds_depth_demo": ("4ds", "4ds-depth-demo"),
    "4ds_eval": ("4ds", "4ds-eval"),
    "moog": ("moog", "moog-inference"),
    "rvm": ("rvm", "rvm-inference"),
    "rvm_inference": ("rvm", "rvm-inference"),
    "davis": ("rvm", "davis"),
    "jhmdb": ("rvm", "jhmdb"),
    "vip": ("rvm", "vip"),
}


def accepts_case(case: dict, case_dir: Path) -> bool:
    return case.get("family") == "preprocess"


def _processor_class(family: str):
    from rep4d.processing.video_processing_fourds import FourDSVideoProcessor
    from rep4d.processing.video_processing_moog import MooGVideoProcessor
    from rep4d.processing.video_processing_rvm import RVMVideoProcessor

    return {"4ds": FourDSVideoProcessor, "moog": MooGVideoProcessor, "rvm": RVMVideoProcessor}[family]


def frame_options(case: dict) -> dict:
    """``frame_sampling`` / ``start_frame`` / ``frame_stride`` / ``num_frames`` of a case, from case.json."""
    options = {"frame_sampling": "consecutive", "start_frame": int(case.get("start_frame", 0)),
               "frame_stride": int(case.get("frame_stride", 1))}
    selection = str(case.get("frame_selection", "")).strip().lower()
    decoded = case.get("decoded_shape", [None])[0]
    if "num_frames" in case:
        options["num_frames"] = case["num_frames"]
    elif selection.startswith("all frames"):
        options["num_frames"] = None
    elif match := re.match(r"first\s+(?:[a-z_]+\s*=\s*)?(\d+)", selection):
        wanted = int(match.group(1))  # official `video[:N]` keeps min(N, T) frames
        options["num_frames"] = min(wanted, decoded) if decoded else wanted
    else:
        raise ValueError(
            f"cannot read the frame selection of case {case.get('case')!r} from case.json "
            f"(frame_selection={case.get('frame_selection')!r}; expected 'all frames' or 'first N frames')"
        )
    return options


def processor_for_case(case: dict):
    """The video processor a preprocess case describes (method, protocol, size and frames from case.json)."""
    kind = str(case.get("kind", "")).lower()
    if kind not in KIND_TO_PROTOCOL:
        raise ValueError(f"unknown preprocess case kind {kind!r}; known kinds: {', '.join(KIND_TO_PROTOCOL)}")
    family, protocol = KIND_TO_PROTOCOL[kind]
    overrides = frame_options(case)
    if "target_size_hw" in case:
        height, width = (int(v) for v in case["target_size_hw"])
        if "crop" in str(case.get("resize", "")).lower():
            overrides.update(resize_mode="shorter_side_crop", size={"shortest_edge": min(height, width)},
                             crop_size={"height": height, "width": width})
        else:
            overrides.update(resize_mode="resize", size={"height": height, "width": width})
    return _processor_class(family).from_protocol(protocol, **overrides)


def float_input_sha256(pixel_values) -> str:
    """sha256 of ``pixel_values`` (B, T, C, H, W) in the fixtures' channels-last layout, float32, C order."""
    array = np.ascontiguousarray(pixel_values.permute(0, 1, 3, 4, 2).numpy().astype(np.float32, copy=False))
    return hashlib.sha256(array.tobytes()).hexdigest()


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    video = Path(case_dir) / case.get("video", "video.mp4")
    if not video.is_file():
        raise FileNotFoundError(f"{case_dir}: the case's video {video.name} is missing")
    processor = processor_for_case(case)
    pixel_values = processor(str(video), return_tensors="pt")["pixel_values"]  # (1, T, C, H, W) float32
    frames = pixel_values[0].permute(0, 2, 3, 1).numpy()  # (T, H, W, C)
    as_uint8 = np.clip(np.round(frames.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    exact = np.array_equal(as_uint8.astype(np.float32) / np.float32(255.0), frames)
    video_uint8 = as_uint8 if exact else frames.astype(np.float64) * 255.0
    return ParityOutputs({"video_uint8": video_uint8}, Tolerance(exact=True))
