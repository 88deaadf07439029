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
            "cube (side cube_size, centred at the origin) moved by the predicted and by the ground-truth pose "
            "(c -> R c + t).",
            citation="",
            inputs_description="predictions, references: per example a (3, 4) pose matrix [R | t] or a (3, 3) "
            "rotation (t = 0); cube_size: float.",
            features=datasets.Features({"predictions": _MATRIX, "references": _MATRIX}),
        )

    def _compute(self, predictions, references, cube_size=1.0):
        predicted = np.asarray(predictions, dtype=np.float64)
        true = np.asarray(references, dtype=np.float64)
        if predicted.ndim != 3 or true.ndim != 3 or predicted.shape[1:] not in ((3, 3), (3, 4)) or (
                true.shape[1:] not in ((3, 3), (3, 4))):
            raise ValueError(
                f"pose_epe takes (3, 4) pose matrices [R | t] or (3, 3) rotations, got {predicted.shape[1:]} and "
                f"{true.shape[1:]}"
            )

        def translation(poses):
            return poses[:, :, 3] if poses.shape[2] == 4 else np.zeros(poses.shape[:2])

        return {
            "pose_epe": pose_epe(predicted[:, :, :3], true[:, :, :3], translation(predicted), translation(true),
                                 cube_size=cube_size)
        }
