"""TAP-Vid point-tracking metrics as a local ``evaluate`` module (maths in ``rep4d.training.metrics``)."""

import datasets
import evaluate
import numpy as np

from rep4d.training.metrics import compute_tapvid_metrics

_DESCRIPTION = """TAP-Vid metrics: average Jaccard, occlusion accuracy and the fraction of points within 1, 2, 4, 8, 16
pixels (and their average), with the `first` (frames after the query) or `strided` (all frames but the query) query
mode. Coordinates are pixels on a 256x256 raster. Values are averaged over videos (or over tracks with trackwise=True).
"""

_INPUTS = """
Args:
    query_points: per video (N, 3) query points (t, y, x).
    gt_occluded: per video (N, T) bool.
    gt_tracks: per video (N, T, 2) (x, y).
    pred_occluded: per video (N, T) bool.
    pred_tracks: per video (N, T, 2) (x, y).
    query_mode: "first" or "strided".
    trackwise: average over tracks (ignoring tracks without a defined value) instead of over videos.
Returns:
    dict of floats: average_jaccard, occlusion_accuracy, average_pts_within_thresh, pts_within_{d}, jaccard_{d}.
"""

_CITATION = """@inproceedings{doersch2022tapvid, title={{TAP}-Vid: A Benchmark for Tracking Any Point in a Video},
author={Doersch, Carl and others}, booktitle={NeurIPS Datasets Track}, year={2022}}"""


def _nested(depth: int, leaf: str):
    feature = datasets.Value(leaf)
    for _ in range(depth):
        feature = datasets.Sequence(feature)
    return feature


class Tapvid(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "query_points": _nested(2, "float64"),
                    "gt_occluded": _nested(2, "bool"),
                    "gt_tracks": _nested(3, "float64"),
                    "pred_occluded": _nested(2, "bool"),
                    "pred_tracks": _nested(3, "float64"),
                }
            ),
        )

    def _compute(
        self, query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks, query_mode="first", trackwise=False
    ):
        metrics = compute_tapvid_metrics(
            np.asarray(query_points, dtype=np.float64),
            np.asarray(gt_occluded, dtype=bool),
            np.asarray(gt_tracks, dtype=np.float64),
            np.asarray(pred_occluded, dtype=bool),
            np.asarray(pred_tracks, dtype=np.float64),
            query_mode=query_mode,
            get_trackwise_metrics=trackwise,
        )
        return {name: float(np.nanmean(value)) for name, value in metrics.items()}
