"""Box-tracking mean IoU (first frame excluded) as a local ``evaluate`` module (maths in ``rep4d.training.metrics``)."""

import datasets
import evaluate
import numpy as np

from rep4d.training.metrics import mean_box_iou

_BOXES = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))


class BoxIou(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Mean IoU of box tracks over visible boxes of every frame except the first (the first-frame "
            "box is the query). Boxes are (ymin, xmin, ymax, xmax).",
            citation="",
            inputs_description="predictions, references: per video (O, T, 4) boxes; visible: optional list of per "
            "video (O, T) bool visibilities of the ground-truth boxes, passed to compute() (not to add_batch).",
            features=datasets.Features({"predictions": _BOXES, "references": _BOXES}),
        )

    def _compute(self, predictions, references, visible=None):
        # Videos may hold different numbers of boxes: pool (box, frame) pairs video by video.
        ious, weights = [], []
        for index, (predicted, reference) in enumerate(zip(predictions, references)):
            predicted = np.asarray(predicted, dtype=np.float64)[None]
            reference = np.asarray(reference, dtype=np.float64)[None]
            mask = None if visible is None else np.asarray(visible[index], dtype=bool)[None]
            count = (reference.shape[1] * (reference.shape[2] - 1)) if mask is None else int(mask[:, :, 1:].sum())
            if count:
                ious.append(mean_box_iou(predicted, reference, mask))
                weights.append(count)
        if not weights:
            raise ValueError("mean box IoU needs at least one visible box after the first frame")
        return {"mean_iou": float(np.average(ious, weights=weights))}
