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
