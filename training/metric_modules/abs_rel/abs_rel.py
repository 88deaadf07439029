"""AbsRel depth metric as a local ``evaluate`` module (maths in ``rep4d.training.metrics``)."""

import datasets
import evaluate
import numpy as np

from rep4d.training.metrics import abs_rel


class AbsRel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Mean absolute relative depth error |pred - gt| / gt over valid pixels (finite gt > 0, "
            "inside the optional valid_mask), pooled over every pixel of every example.",
            citation="",
            inputs_description="predictions, references: per example depth maps (any shape, flattened); "
            "valid_mask: optional list of per example bool masks of the same shapes, passed to compute() (not to add_batch).",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references, valid_mask=None):
        predictions = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in predictions])
        references = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in references])
        if valid_mask is not None:
            valid_mask = np.concatenate([np.asarray(m, dtype=bool).ravel() for m in valid_mask])
        return {"abs_rel": abs_rel(predictions, references, valid_mask)}
