"""Backbone adapters: any video backbone -> (B, T, N, C) features for the readout heads.

A readout head (:mod:`.modeling_readout`) never talks to a backbone directly; it holds a :class:`BackboneAdapter`
whose ``model`` is the backbone and whose ``forward(pixel_values)`` returns features of shape (batch, frames, tokens
per frame, channels), with ``frames`` equal to the adapter's ``num_frames`` (the readout's temporal embedding size).

Adding a backbone (e.g. MooG or RVM) takes one small subclass registered under the backbone config's ``model_type``::

    class MooGBackboneAdapter(BackboneAdapter):
        model_class = MooGModel                       # built with model_class(backbone_config)

        @classmethod
        def feature_dim(cls, config):                 # C of the features
            return config.state_size

        @classmethod
        def default_num_frames(cls, config):          # T the backbone is used with
            return config.num_frames

        @classmethod
        def default_image_size(cls, config):          # [H, W] of the input video
            return list(config.image_size)

        def extract(self, pixel_values, feature_layer=None):
            # MooG emits one state of K latent tokens per frame: (B, T, K, D) is already the readout layout.
            return self.model(pixel_values).states

    register_backbone_adapter("moog", MooGBackboneAdapter)

For RVM, whose per-frame features are (B, T, 1 + N, D) with a leading summary token, ``extract`` returns
``features[:, :, 1:]`` (patch tokens only) or the full tensor if the readout should also attend to the summary token
(document the choice in the adapter). ``extract`` must return exactly ``num_frames`` frames; backbones that
subsample time (tubelets) resample with :func:`resample_frames` as 4DS does. Import the module that registers the
adapter from ``rep4d/__init__.py`` so ``ReadoutConfig(backbone_config=...)`` finds it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import VideoMAEModel

from .layers import cubic_resize_matrix
from .modeling_fourds import FourDSModel
from .modeling_moog import MooGModel
from .modeling_rvm import RVMModel


def resample_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, t, N, C) -> (B, num_frames, N, C), resampled in time with ``jax.image.resize``'s cubic kernel (as 4DS)."""
    if features.shape[1] == num_frames:
        return features
    weights = cubic_resize_matrix(features.shape[1], num_frames).to(device=features.device, dtype=features.dtype)
    return torch.einsum("oi,bisd->bosd", weights, features)


class BackboneAdapter(nn.Module):
    """Turns a backbone into a (B, T, N, C) feature extractor. Subclass and register per ``model_type``."""

    model_class: ClassVar[type[nn.Module]]

    def __init__(self, backbone_config, num_frames: int | None = None, feature_layer: int | None = None):
        super().__init__()
        self.model = self.model_class(backbone_config)
        self.num_frames = num_frames or self.default_num_frames(backbone_config)
        self.feature_layer = feature_layer

    @classmethod
    def feature_dim(cls, config) -> int:
        return config.hidden_size

    @classmethod
    def default_num_frames(cls, config) -> int:
        return config.num_frames

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        size = config.image_size
        return [int(size), int(size)] if isinstance(size, int) else [int(v) for v in size]

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int | None:
        """N of the (B, T, N, C) features for frames of ``image_size``, if the adapter knows it without running the
        backbone (needed by the readout's optional feature position embedding); None if unknown."""
        return None

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.extract(pixel_values, self.feature_layer)
        if features.ndim != 4 or features.shape[1] != self.num_frames:
            raise ValueError(
                f"{type(self).__name__} must return (batch, {self.num_frames} frames, tokens, channels) features, "
                f"got {tuple(features.shape)}"
            )
        return features


class FourDSBackboneAdapter(BackboneAdapter):
    """4DS: the model's ``readout_features`` (layer ``readout_depth``, cubic-resampled to the input frames)."""

    model_class = FourDSModel

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        return (int(image_size[0]) // config.tubelet_size[1]) * (int(image_size[1]) // config.tubelet_size[2])

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        if feature_layer is None:
            features = self.model(pixel_values, readout_only=True).readout_features
        else:
            outputs = self.model(pixel_values, output_hidden_states=True)
            grid = self.model.embeddings.token_grid(pixel_values, self.model.config.interpolate_pos_encoding)
            features = self.model.resample_readout_features(
                outputs.hidden_states[feature_layer], grid, pixel_values.shape[1]
            )
        return resample_frames(features, self.num_frames)


class VideoMAEBackboneAdapter(BackboneAdapter):
    """transformers' VideoMAE: tokens (B, t*h*w, C) -> (B, t, h*w, C), cubic-resampled to ``num_frames`` as 4DS.

    The default features are ``last_hidden_state`` (after the final LayerNorm when ``use_mean_pooling`` is off);
    ``feature_layer`` selects ``hidden_states[feature_layer]`` instead. Inputs are the (B, T, C, H, W) videos the
    VideoMAE video processor produces (ImageNet-normalised).
    """

    model_class = VideoMAEModel

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        return (int(image_size[0]) // config.patch_size) * (int(image_size[1]) // config.patch_size)

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        config = self.model.config
        outputs = self.model(pixel_values, output_hidden_states=feature_layer is not None)
        tokens = outputs.last_hidden_state if feature_layer is None else outputs.hidden_states[feature_layer]
        frames = pixel_values.shape[1] // config.tubelet_size
        if tokens.shape[1] % frames:
            raise ValueError(f"VideoMAE returned {tokens.shape[1]} tokens, not a multiple of {frames} token frames")
        features = tokens.reshape(tokens.shape[0], frames, tokens.shape[1] // frames, tokens.shape[-1])
        return resample_frames(features, self.num_frames)


class MooGBackboneAdapter(BackboneAdapter):
    """MooG: the corrected state of every frame, (B, T, K, D): K latent tokens of width ``token_size`` per frame.

    MooG starts from a noise state; the adapter draws it from a generator seeded with 0 on every call, so frozen
    features are deterministic (cacheable, reproducible evaluation) while the state still starts as in training.
    """

    model_class = MooGModel

    @classmethod
    def feature_dim(cls, config) -> int:
        return config.token_size

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        if feature_layer is not None:
            raise ValueError("MooG features are its corrected states; backbone_feature_layer must be None")
        generator = torch.Generator(device=pixel_values.device).manual_seed(0)
        return self.model(pixel_values, generator=generator).corrected_states


class RVMBackboneAdapter(BackboneAdapter):
    """RVM: the recurrent state after every frame, (B, T, 1 + N, D) -> patch tokens (B, T, N, D).

    The leading summary (CLS) token is dropped so that every token is a spatial patch, as for 4DS and VideoMAE.
    RVM reads any number of frames; the readout's ``num_frames`` (default 16) must equal the clip length.
    """

    model_class = RVMModel

    @classmethod
    def default_num_frames(cls, config) -> int:
        return int(getattr(config, "num_frames", None) or 16)

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        if feature_layer is not None:
            raise ValueError("RVM features are its recurrent states; backbone_feature_layer must be None")
        return self.model(pixel_values).last_hidden_state[:, :, 1:]


BACKBONE_ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "fourds": FourDSBackboneAdapter,
    "videomae": VideoMAEBackboneAdapter,
    "moog": MooGBackboneAdapter,
    "rvm": RVMBackboneAdapter,
}


def register_backbone_adapter(model_type: str, adapter_class: type[BackboneAdapter]) -> None:
    """Make backbones whose config has ``model_type`` usable by every readout head."""
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, BackboneAdapter)):
        raise TypeError(f"adapter_class must subclass BackboneAdapter, got {adapter_class!r}")
    BACKBONE_ADAPTERS[model_type] = adapter_class


def backbone_adapter_class(backbone_config) -> type[BackboneAdapter]:
    model_type = getattr(backbone_config, "model_type", None)
    if model_type not in BACKBONE_ADAPTERS:
        raise ValueError(
            f"no backbone adapter for model_type {model_type!r}; available: {', '.join(sorted(BACKBONE_ADAPTERS))}. "
            "Register one with rep4d.modeling.backbone_adapters.register_backbone_adapter"
        )
    return BACKBONE_ADAPTERS[model_type]


__all__ = [
    "BackboneAdapter",
    "FourDSBackboneAdapter",
    "VideoMAEBackboneAdapter",
    "MooGBackboneAdapter",
    "RVMBackboneAdapter",
    "BACKBONE_ADAPTERS",
    "register_backbone_adapter",
    "backbone_adapter_class",
    "resample_frames",
]
