"""Parity runner for ``protocols/tapvid_queries`` fixture cases (tapnet's TAP-Vid query sampling and metrics).

Two kinds of case, told apart by ``case.json["mode"]``:

* ``loader``: the case's ``video`` / ``points`` / ``occluded`` are written as a one-video TAP-Vid-DAVIS pickle
  (``{name: {video, points, occluded}}``) and read back through
  :func:`rep4d.training.tapvid.create_davis_dataset` (restricted unpickling, Lanczos resize to
  ``case.json["resolution"]``, [-1, 1] frames, points in pixels, queries sampled with ``query_mode``);
* ``direct``: :func:`~rep4d.training.tapvid.sample_queries_first` or
  :func:`~rep4d.training.tapvid.sample_queries_strided` (``query_stride`` from ``case.json``) on the given arrays.

Then :func:`rep4d.training.metrics.compute_tapvid_metrics` scores the case's ``pred_tracks`` / ``pred_occluded``
with the same ``query_mode``, per video (``metrics/*``) and per track (``trackwise_metrics/*``).

Tolerances (fixture README section 4 and ``case.json["tolerance"]``): ``query_points``, ``occluded``,
``trackgroup`` exact; ``video`` and ``target_points`` atol 1e-6 (exact in ``direct`` cases, where they are passed
through); metrics atol 1e-9 with NaN patterns equal.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays

FAMILY = "tapvid_queries"
LOADER_FIELDS = ("video", "points", "occluded")


def accepts_case(case: dict, case_dir: Path) -> bool:
    return case.get("family") == FAMILY and case.get("mode") in ("loader", "direct")


def sample_case(case_dir: Path, case: dict, inputs: dict) -> dict:
    """The sampled example of a case through the public reader / samplers."""
    from rep4d.training import tapvid

    query_mode = case["query_mode"]
    if case["mode"] == "loader":
        missing = [key for key in LOADER_FIELDS if key not in inputs]
        if missing:
            raise ValueError(f"{case_dir}: a tapvid_queries loader case needs the inputs {missing}")
        resolution = case.get("resolution")
        resolution = tuple(int(size) for size in resolution) if resolution is not None else None
        with tempfile.TemporaryDirectory(prefix="rep4d_tapvid_") as folder:
            path = Path(folder) / "tapvid_davis.pkl"
            entry = {key: inputs[key] for key in LOADER_FIELDS}
            with open(path, "wb") as handle:
                pickle.dump({case.get("case", case_dir.name): entry}, handle)
            examples = list(tapvid.create_davis_dataset(path, query_mode=query_mode, resolution=resolution))
        if len(examples) != 1:
            raise ValueError(f"{case_dir}: expected one video from the loader, got {len(examples)}")
        return examples[0]["davis"]
    missing = [key for key in ("target_occluded", "target_points", "frames") if key not in inputs]
    if missing:
        raise ValueError(f"{case_dir}: a tapvid_queries direct case needs the inputs {missing}")
    if query_mode == "strided":
        stride = case.get("query_stride")
        stride = tapvid.DEFAULT_QUERY_STRIDE if stride is None else int(stride)
        return tapvid.sample_queries_strided(inputs["target_occluded"], inputs["target_points"], inputs["frames"],
                                             query_stride=stride)
    if query_mode == "first":
        return tapvid.sample_queries_first(inputs["target_occluded"], inputs["target_points"], inputs["frames"])
    raise ValueError(f"{case_dir}: unknown query_mode {query_mode!r} (expected first or strided)")


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    from rep4d.training.metrics import compute_tapvid_metrics

    case_dir = Path(case_dir)
    inputs = load_case_arrays(case_dir / "inputs.npz")
    example = sample_case(case_dir, case, inputs)
    arrays = {key: example[key] for key in ("video", "query_points", "target_points", "occluded", "trackgroup")
              if key in example}
    if "pred_tracks" in inputs and "pred_occluded" in inputs:
        for prefix, trackwise in (("metrics", False), ("trackwise_metrics", True)):
            scores = compute_tapvid_metrics(
                example["query_points"], example["occluded"], example["target_points"], inputs["pred_occluded"],
                inputs["pred_tracks"], query_mode=case["query_mode"], get_trackwise_metrics=trackwise,
            )
            arrays.update({f"{prefix}/{name}": value for name, value in scores.items()})
    passed_through = Tolerance(exact=True) if case["mode"] == "direct" else Tolerance(atol=1e-6)
    per_key = {
        "query_points": Tolerance(exact=True),
        "occluded": Tolerance(exact=True),
        "trackgroup": Tolerance(exact=True),
        "video": passed_through,
        "target_points": passed_through,
    }
    return ParityOutputs(arrays, default=Tolerance(atol=1e-9), per_key=per_key)
