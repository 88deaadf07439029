"""Top-1 accuracy with multi-clip averaging as a local ``evaluate`` module (maths in ``rep4d.training.metrics``)."""

import datasets
import evaluate
import numpy as np

from rep4d.training.metrics import average_clips, top1_accuracy


class Top1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Top-1 accuracy. With num_clips=c > 1, the softmaxes of c consecutive clips (one video) are "
            "averaged before the arg-max, and the label of the video's first clip is used.",
            citation="",
            inputs_description="predictions: per clip (K,) logits; references: per clip integer label; num_clips: int.",
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_clips=1):
        logits = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.int64)
        if num_clips > 1:
            logits = average_clips(logits, num_clips)
            grouped = labels.reshape(-1, num_clips)
            if np.any(grouped != grouped[:, :1]):
                raise ValueError("clips of one video (consecutive groups of num_clips) must share their label")
            labels = grouped[:, 0]
        return {"top1_accuracy": top1_accuracy(logits, labels)}
