"""Model outputs shared by every family: one meaning per field, whatever the backbone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class VideoFeaturesOutput(ModelOutput):
    """What ``get_video_features`` returns for every rep4d backbone (4DS, MooG, RVM).

    Args:
        features: (B, T, N, C) per-frame token features, the ones readouts and label propagation use (4DS: the
            readout-depth features resampled to the input frame count; RVM: patch tokens, CLS dropped; MooG:
            the corrected states, N = number of latent tokens).
        grid_size: (h, w) token grid with ``h * w == N`` for grid backbones (4DS, RVM); ``None`` for MooG,
            whose tokens are not tied to the pixel grid.
        final_state: recurrent state after the last frame (MooG, RVM), to continue a stream; ``None`` for 4DS.
    """

    features: torch.FloatTensor | None = None
    grid_size: tuple[int, int] | None = None
    final_state: torch.FloatTensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Task outputs shared by every family: MooG's heads and the attention readouts on any backbone return these.


@dataclass
class PointTrackingOutput(ModelOutput):
    """Point tracks, the same for every point-tracking head (MooG's released and recurrent heads, the readouts).

    Args:
        loss: training loss, when targets were given.
        tracks: (B, Q, T, 2) predicted positions as (x, y) in pixels of the input frames (x in [0, W], y in [0, H]).
        occluded: (B, Q, T) bool, predicted occlusion: a point is visible when
            ``sigmoid(visibility_logits) * sigmoid(certainty_logits) > threshold`` (TAPIR's rule).
        visibility_logits: (B, Q, T) logit of "the point is visible".
        certainty_logits: (B, Q, T) logit of "the position is within a few pixels of the truth".
        hidden_states: hidden states of the backbone (``output_hidden_states``), in the backbone's layout.
        attentions: attention weights of the backbone (``output_attentions``, eager attention).
        final_state: recurrent state of the backbone after the last frame (MooG, RVM), to continue a stream.
    """

    loss: torch.FloatTensor | None = None
    tracks: torch.FloatTensor | None = None
    occluded: torch.BoolTensor | None = None
    visibility_logits: torch.FloatTensor | None = None
    certainty_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    final_state: torch.FloatTensor | None = None


@dataclass
class BoxTrackingOutput(ModelOutput):
    """Box tracks, the same for every box-tracking head (MooG's released head, the readouts).

    Args:
        loss: training loss, when targets were given.
        boxes: (B, O, T, 4) predicted boxes as (ymin, xmin, ymax, xmax) normalised to [0, 1] by the frame size
            (the layout of the query boxes).
        hidden_states / attentions / final_state: as :class:`PointTrackingOutput`.
    """

    loss: torch.FloatTensor | None = None
    boxes: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    final_state: torch.FloatTensor | None = None


@dataclass
class DepthEstimationOutput(ModelOutput):
    """Depth, the same for every depth head (MooG's grid readout, the readouts).

    Args:
        loss: training loss, when ground-truth depth was given.
        predicted_depth: (B, T, H, W) depth in the units of the training data.
        hidden_states / attentions / final_state: as :class:`PointTrackingOutput`.
    """

    loss: torch.FloatTensor | None = None
    predicted_depth: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    final_state: torch.FloatTensor | None = None


__all__ = ["VideoFeaturesOutput", "PointTrackingOutput", "BoxTrackingOutput", "DepthEstimationOutput"]
