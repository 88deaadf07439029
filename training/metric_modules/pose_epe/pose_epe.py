"""Camera-pose end-point error on a virtual cube as a local ``evaluate`` module (maths in ``rep4d.training.metrics``)."""

import datasets
import evaluate
import numpy as np

from rep4d.training.metrics import pose_epe

_MATRIX = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))


class PoseEpe(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Camera-pose end-point error: mean Euclidean distance between the 8 corners of a virtual "
            "cube (side cube_size, centred at the origin) rotated by the predicted and by the ground-truth rotation.",
            citation="",
            inputs_description="predictions, references: per example (3, 3) rotation matrices; cube_size: float.",
            features=datasets.Features({"predictions": _MATRIX, "references": _MATRIX}),
        )

    def _compute(self, predictions, references, cube_size=1.0):
        return {
            "pose_epe": pose_epe(
                np.asarray(predictions, dtype=np.float64),
                np.asarray(references, dtype=np.float64),
                cube_size=cube_size,
            )
        }
