"""Training losses of the models and readout heads, in one place (``rep4d.modeling.losses``).

- :func:`masked_mean_squared_error` / :func:`depth_loss`: MSE over valid pixels (4DS and MooG depth heads, the
  readout's default depth loss); :func:`log_depth_loss`: the scale-aware log-depth variants of the depth readout.
- :func:`point_tracking_loss`: TAPIR-style Huber on positions + BCE on visibility + BCE on certainty.
- :func:`box_tracking_loss`: L2 on normalised boxes over visible boxes.
- :func:`camera_pose_loss`: L2 on the 3x4 pose matrix (rotation and translation).
- :func:`classification_loss`: cross-entropy.

Model files import these with relative imports (the remote-code exporter copies this module with them).
"""

from __future__ import annotations

import torch
from torch import nn

# Metric raster of the point-tracking losses (TAP-Vid evaluates on 256x256 frames).
POINT_RASTER = 256.0


def masked_mean_squared_error(predicted: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(predicted - target)^2`` over the ``valid_mask`` entries (non-finite targets count as 0 and must be
    masked out); 0 when nothing is valid."""
    squared = (predicted.float() - torch.nan_to_num(target.float())) ** 2
    return (squared * valid_mask).sum() / valid_mask.sum().clamp_min(1)


def depth_valid_mask(
    predicted: torch.Tensor, labels: torch.Tensor, valid_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Checked (B, T, H, W) bool mask of the pixels a depth loss counts: ``valid_mask`` if given, else the pixels
    with finite ground truth > 0."""
    if labels.shape != predicted.shape:
        raise ValueError(f"depth labels must have shape {tuple(predicted.shape)} (B, T, H, W), got {tuple(labels.shape)}")
    if valid_mask is None:
        return torch.isfinite(labels) & (labels > 0)
    if valid_mask.shape != labels.shape:
        raise ValueError(f"valid_mask must have shape {tuple(labels.shape)}, got {tuple(valid_mask.shape)}")
    return valid_mask.bool()


def depth_loss(
    predicted: torch.Tensor, labels: torch.Tensor, valid_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error over valid pixels (finite ground truth > 0 unless a mask is given)."""
    return masked_mean_squared_error(predicted, labels, depth_valid_mask(predicted, labels, valid_mask))


def log_depth_loss(
    predicted: torch.Tensor,
    labels: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    eps: float = 1e-3,
    norm: str = "l2",
) -> torch.Tensor:
    """Mean squared (``norm="l2"``) or absolute (``"l1"``) error of log-depth over valid pixels (finite ground truth
    > 0 unless a mask is given). The L1 form is minimised by the per-pixel median, the L2 form by the geometric mean.

    Predictions are clamped to ``eps`` before the log (a negative depth gets the gradient-free penalty of
    ``log(eps)``); the head's output starts at the mean training depth, far from that clamp.
    """
    # The log needs positive labels even where a given mask says valid.
    valid_mask = depth_valid_mask(predicted, labels, valid_mask) & torch.isfinite(labels) & (labels > 0)
    target = torch.log(torch.where(valid_mask, labels.float(), torch.ones_like(labels.float())))
    error = torch.log(predicted.float().clamp_min(eps)) - target
    error = error.abs() if norm == "l1" else error**2
    return (error * valid_mask).sum() / valid_mask.sum().clamp_min(1)


def huber(distance: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber loss of a non-negative distance: 0.5 d^2 below delta, delta (d - delta/2) above."""
    return torch.where(distance <= delta, 0.5 * distance**2, delta * (distance - 0.5 * delta))


def point_tracking_loss(
    positions: torch.Tensor,
    visibility_logits: torch.Tensor,
    certainty_logits: torch.Tensor,
    tracks: torch.Tensor,
    occluded: torch.Tensor,
    height: int,
    width: int,
    huber_delta: float = 4.0,
    certainty_threshold: float = 6.0,
    position_weight: float = 0.05,
    visibility_weight: float = 1.0,
    certainty_weight: float = 1.0,
) -> torch.Tensor:
    """TAPIR-style point-tracking loss: Huber on (B, N, T, 2) (x, y) positions in pixels of a 256x256 raster over
    visible points, + BCE(visibility) + BCE(certainty), whose target is "within ``certainty_threshold`` px" (on
    visible points); weighted sum."""
    to_raster = positions.new_tensor([POINT_RASTER / width, POINT_RASTER / height])
    visible = (~occluded.bool()).to(positions.dtype)
    error = (positions - tracks.to(positions.dtype)) * to_raster
    distance = torch.sqrt((error**2).sum(-1) + 1e-12)
    count = visible.sum().clamp_min(1)
    position_loss = (huber(distance, huber_delta) * visible).sum() / count
    visibility_loss = nn.functional.binary_cross_entropy_with_logits(visibility_logits, visible)
    # Certainty target: the prediction lies within the threshold (on visible points only).
    certain = (distance.detach() < certainty_threshold).to(positions.dtype)
    certainty_loss = (
        nn.functional.binary_cross_entropy_with_logits(certainty_logits, certain, reduction="none") * visible
    ).sum() / count
    return position_weight * position_loss + visibility_weight * visibility_loss + certainty_weight * certainty_loss


def box_tracking_loss(predicted: torch.Tensor, boxes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between (B, O, T, 4) predicted and true boxes, averaged over the (B, O, T) ``weights``
    (box visibility)."""
    squared = ((predicted - boxes.to(predicted.dtype)) ** 2).sum(-1)
    return (squared * weights).sum() / weights.sum().clamp_min(1)


def camera_pose_loss(
    rotation: torch.Tensor,
    translation: torch.Tensor,
    target_rotation: torch.Tensor,
    target_translation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared L2 distance between the predicted and true 3x4 pose matrices ``[R | t]`` ((B, 3, 3) rotations,
    (B, 3) translations), averaged over the batch. Without ``target_translation`` only the rotation is scored."""
    loss = ((rotation - target_rotation.to(rotation.dtype)) ** 2).sum((-1, -2))
    if target_translation is not None:
        loss = loss + ((translation - target_translation.to(translation.dtype)) ** 2).sum(-1)
    return loss.mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, K) logits (in float32) against (B,) class ids."""
    return nn.functional.cross_entropy(logits.float(), labels)


__all__ = [
    "POINT_RASTER",
    "masked_mean_squared_error",
    "depth_valid_mask",
    "depth_loss",
    "log_depth_loss",
    "huber",
    "point_tracking_loss",
    "box_tracking_loss",
    "camera_pose_loss",
    "classification_loss",
]
