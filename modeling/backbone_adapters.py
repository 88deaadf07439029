"""Backbone adapters: any video or image backbone -> (B, T, N, C) grid features, one API for every consumer.

Every consumer of backbone features (the readout heads of :mod:`.modeling_readout`, label propagation, the feature
pipeline, the propagation benchmark) goes through one of two doors:

* :class:`BackboneAdapter` (``adapter(pixel_values)`` -> (B, ``num_frames``, N, C), the readout's input), built from a
  config (``adapter_class(config, num_frames, feature_layer)``, what a readout does), from a model id or folder
  (:meth:`BackboneAdapter.from_pretrained`) or around a model instance (:func:`adapter_for`);
* :func:`dense_feature_extractor` (float frames (T, 3, H, W) in [0, 1] -> (T, h, w, C)) for whole videos.

Both call ``get_video_features(pixel_values, **kwargs) -> VideoFeaturesOutput``: rep4d's models (4DS, MooG, RVM)
define it themselves, so their adapter is one generic class with no per-model code; transformers' own backbones get
it from :class:`TransformersBackboneAdapter`, which reads the model's ``hidden_states`` (one small subclass per family
says where the special tokens are and how tokens are laid out):

=========================  ================================  =========================================================
family (``model_type``)    class                             tokens read
=========================  ================================  =========================================================
``videomae``               VideoMAEModel                     hidden state at the readout depth, (t, h, w) tubelets
``vjepa2``                 VJEPA2Model (encoder only)        hidden state at the readout depth, (t, h, w) tubelets
``timesformer``            TimesformerModel                  hidden state at the readout depth, CLS dropped, (h, w, t)
``vivit``                  VivitModel                        hidden state at the readout depth, CLS dropped
``videoprism``             VideoPrismVisionModel             ``last_hidden_state`` (T, h, w) after the factorised
                                                             spatial + temporal stacks (its hidden states mix the
                                                             (B*T, N) spatial and (B*N, T) temporal layouts)
``xclip``                  XCLIPVisionModel                  per frame, CLS dropped; the frames of a clip exchange
                                                             message tokens, so clips have ``num_frames`` frames
``dinov2``,                Dinov2Model,                      per frame (image model), CLS and registers dropped
``dinov2_with_registers``, Dinov2WithRegistersModel,
``dinov3_vit``             DINOv3ViTModel
``siglip``, ``siglip2``    SiglipVisionModel,                per frame (image model), no special tokens; SigLIP 2 gets
                           Siglip2VisionModel                the whole frame as one NaFlex patch sequence
``pe_video``               PeVideoModel's vision tower       per frame (image tower), CLS dropped: PE's temporal model
                           (TimmWrapperForImage-             sees one pooled embedding per frame, so the 4D readouts
                           Classification, a timm ViT)       read the spatial tower (needs ``timm``)
=========================  ================================  =========================================================

Composite configs (``siglip``, ``siglip2``, ``xclip``, ``videoprism``) use their ``vision_config``; ``pe_video`` its
``video_config.vision_config`` (a ``TimmWrapperConfig``).

**Layer.** As the 4DS paper does, the layer is chosen by relative depth (``readout_depth``: 0.95 for the 4D tasks,
0.75 for frozen classification, :data:`READOUT_DEPTHS`) with the reference's rule (``FourDSModel``): with L blocks
the reference feature list is ``[tokens, tokens, out_0, ..., out_{L-2}]`` and the readout reads entry
``int((L + 1) * depth) - 1``, i.e. ``hidden_states[max(int((L + 1) * depth) - 2, 0)]`` (embeddings first). These are
the residual stream before any final norm, as for 4DS. ``feature_layer`` picks a ``hidden_states`` index instead.

**Time.** Features of a backbone with temporal tubelets (t = T / tubelet frames) are resampled to the input frame
count with ``jax.image.resize``'s cubic kernel (:func:`resample_frames`, as 4DS), and ``adapter(pixel_values)``
resamples again to the readout's ``num_frames``.

**Frame size.** A backbone with a learned position table (4DS, SigLIP, VideoPrism) gets it resampled whenever the
token grid differs from the trained one: the adapter asks for it (``interpolate_pos_encoding``), so no caller has
to change the model's config.

**Inputs.** ``adapter(pixel_values)`` takes what the backbone's own processor produces (normalised for transformers'
models); :func:`dense_feature_extractor` takes [0, 1] frames and applies the adapter's ``pixel_mean`` /
``pixel_std`` (read from the folder's processor config by :meth:`~BackboneAdapter.from_pretrained`, else the family's
default).

The learned position embedding the paper adds to the features before the readout is the readout's
(``ReadoutConfig.feature_position_embedding``); adapters report their token count with ``tokens_per_frame``.

Adding a backbone: subclass :class:`BackboneAdapter` (or :class:`TransformersBackboneAdapter`) and register it under
the config's ``model_type`` with :func:`register_backbone_adapter`. A subclass may still override the older
``extract(pixel_values, feature_layer)`` hook, which must return (B, T', N, C) features.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from transformers import AutoConfig
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from .modeling_fourds import FourDSModel, readout_hidden_state_index
from .modeling_moog import MooGModel
from .modeling_rvm import RVMModel
from .outputs import VideoFeaturesOutput
from .resampling import resample_frames

# Relative depth of the features a readout reads (4DS paper, section 3.3 and appendix A.2).
READOUT_DEPTHS = {"depth": 0.95, "points": 0.95, "boxes": 0.95, "pose": 0.95, "classification": 0.75}
DEFAULT_READOUT_DEPTH = 0.95


def hidden_state_index(num_layers: int, readout_depth: float) -> int:
    """``hidden_states`` index (embeddings first) of the features at ``readout_depth`` of ``num_layers`` blocks, by
    the 4DS reference's rule (see the module docstring): ``max(int((L + 1) * depth) - 2, 0)``."""
    return readout_hidden_state_index(num_layers, readout_depth)


def _check_video(pixel_values) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 5:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (batch, frames, channels, height, width) tensor, got {shape}")


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


def accept_full_state_dicts(model: nn.Module) -> nn.Module:
    """Let ``model.load_state_dict`` take the state dict of the full model when ``model`` was built reduced (4DS up to
    its readout layer): the keys matching its ``_keys_to_ignore_on_load_unexpected`` (the blocks it leaves out) are
    dropped first, as ``from_pretrained`` ignores them. ``load_state_dict(full_backbone.state_dict())`` then loads
    every weight the model holds (strictly) and nothing else."""
    patterns = getattr(model, "_keys_to_ignore_on_load_unexpected", None)
    if patterns:
        model.register_load_state_dict_pre_hook(_DropIgnoredKeys(sorted(patterns)))
    return model


class _DropIgnoredKeys:
    """``load_state_dict`` pre-hook of :func:`accept_full_state_dicts` (a class, so the model still pickles)."""

    def __init__(self, patterns: list[str]):
        self.pattern = "|".join(f"(?:{pattern})" for pattern in patterns)

    def __call__(self, module, state_dict, prefix, *args) -> None:
        ignored = re.compile(self.pattern)
        for key in [k for k in state_dict if k.startswith(prefix) and ignored.search(k[len(prefix) :])]:
            del state_dict[key]


class _TransformersClass:
    """A transformers model class looked up on first use (importing a model module costs ~1 s at ``import rep4d``)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, instance, owner) -> type[nn.Module]:
        import transformers

        model_class = getattr(transformers, self.name, None)
        if model_class is None:
            raise ValueError(f"transformers {transformers.__version__} has no {self.name}; upgrade transformers")
        return model_class


class BackboneAdapter(nn.Module):
    """Turns a backbone into a (B, T, N, C) feature extractor. Subclass and register per ``model_type``.

    Args:
        backbone_config: the backbone's config (a composite config is reduced to its vision part).
        num_frames: T of ``forward``'s output (the readout's frame count); the backbone's clip length if None.
        feature_layer: ``hidden_states`` index of the features (overrides ``readout_depth``).
        readout_depth: relative depth of the features (0.95 for 4D tasks, 0.75 for frozen classification) of
            transformers' backbones (default 0.95); 4DS reads its own ``config.readout_depth``.
        model: an already built backbone to wrap instead of building ``model_class(backbone_config)``.
    """

    model_class: ClassVar[type[nn.Module]]
    pixel_mean: ClassVar[tuple[float, ...] | None] = None
    pixel_std: ClassVar[tuple[float, ...] | None] = None

    def __init__(
        self,
        backbone_config,
        num_frames: int | None = None,
        feature_layer: int | None = None,
        readout_depth: float | None = None,
        model: nn.Module | None = None,
    ):
        super().__init__()
        backbone_config = self.backbone_config_of(backbone_config)
        if model is None:
            model = self.model_class(backbone_config, **self.model_init_kwargs(backbone_config, feature_layer))
            accept_full_state_dicts(model)
        self.model = model
        # The weights of a full checkpoint that a reduced backbone (4DS built up to its readout layer) leaves out are
        # expected-unused: the model's ignore patterns must reach the readout that holds this adapter (transformers
        # gathers them from a PreTrainedModel's direct children only).
        for name in ("_keys_to_ignore_on_load_unexpected", "_keys_to_ignore_on_load_missing"):
            patterns = getattr(model, name, None)
            if patterns:
                setattr(self, name, set(patterns))
        self.num_frames = num_frames or self.default_num_frames(backbone_config)
        self.feature_layer = feature_layer
        self.readout_depth = DEFAULT_READOUT_DEPTH if readout_depth is None else float(readout_depth)
        self.image_mean = self.pixel_mean
        self.image_std = self.pixel_std

    # -- what the readout asks before running the backbone --------------------------------------------------------

    @classmethod
    def backbone_config_of(cls, config):
        """The config of the module that gets built (the vision part of a composite text-vision config)."""
        return config

    @classmethod
    def model_init_kwargs(cls, config, feature_layer: int | None = None) -> dict:
        """Extra keyword arguments of ``model_class(config, ...)`` / ``model_class.from_pretrained`` for an adapter
        reading ``feature_layer`` (none by default; 4DS builds only the blocks the features need)."""
        return {}

    @classmethod
    def feature_dim(cls, config) -> int:
        return cls.backbone_config_of(config).hidden_size

    @classmethod
    def default_num_frames(cls, config) -> int:
        return cls.backbone_config_of(config).num_frames

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        return list(_pair(cls.backbone_config_of(config).image_size))

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int | None:
        """N of the (B, T, N, C) features for frames of ``image_size``, if known without running the backbone (the
        readout's optional feature position embedding needs it); None if unknown."""
        return None

    @classmethod
    def clip_length(cls, config) -> int | None:
        """Frames the backbone must see at once (fixed-length video models), or None if any count works."""
        return None

    # -- features ---------------------------------------------------------------------------------------------------

    def get_video_features(self, pixel_values: torch.Tensor, **kwargs) -> VideoFeaturesOutput:
        """(B, T, C, H, W) -> :class:`VideoFeaturesOutput` with ``features`` (B, T, N, C) at the input frame count."""
        features = self.extract(pixel_values, self.feature_layer)
        return VideoFeaturesOutput(features=resample_frames(features, pixel_values.shape[1]))

    def extract(self, pixel_values: torch.Tensor, feature_layer: int | None = None) -> torch.Tensor:
        """Older hook: (B, T, C, H, W) -> (B, T', N, C). Override this or :meth:`get_video_features`."""
        raise NotImplementedError(f"{type(self).__name__} must define get_video_features or extract")

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels (channels in dim -3) -> the backbone's input normalisation (identity for rep4d models)."""
        if self.image_mean is None:
            return frames
        shape = (-1, 1, 1)
        mean = torch.tensor(self.image_mean, dtype=frames.dtype, device=frames.device).reshape(shape)
        std = torch.tensor(self.image_std, dtype=frames.dtype, device=frames.device).reshape(shape)
        return (frames - mean) / std

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if type(self).extract is not BackboneAdapter.extract:  # a subclass written against the older hook
            features = self.extract(pixel_values, self.feature_layer)
        else:
            features = self.get_video_features(pixel_values).features
        features = resample_frames(features, self.num_frames) if features.ndim == 4 else features
        if features.ndim != 4 or features.shape[1] != self.num_frames:
            raise ValueError(
                f"{type(self).__name__} must return (batch, {self.num_frames} frames, tokens, channels) features, "
                f"got {tuple(features.shape)}"
            )
        return features

    # -- loading ----------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        num_frames: int | None = None,
        feature_layer: int | None = None,
        readout_depth: float | None = None,
        **kwargs,
    ) -> BackboneAdapter:
        """An adapter around the backbone of a model id or folder (any registered ``model_type``), in eval mode.

        ``kwargs`` go to ``from_pretrained`` of the backbone class (``dtype``, ``revision``, ...). The pixel
        normalisation is read from the folder's ``preprocessor_config.json`` / ``video_preprocessor_config.json``
        when present.
        """
        config = AutoConfig.from_pretrained(name_or_path, **{k: v for k, v in kwargs.items() if k == "revision"})
        adapter_class = backbone_adapter_class(config) if cls is BackboneAdapter else cls
        sub_config = adapter_class.backbone_config_of(config)
        model_class = adapter_class.model_class
        if sub_config is config:
            init_kwargs = adapter_class.model_init_kwargs(config, feature_layer)
            model = accept_full_state_dicts(model_class.from_pretrained(name_or_path, **init_kwargs, **kwargs))
        else:  # a text-vision repo: load it whole and keep its vision tower (the key prefixes differ per family)
            from transformers import AutoModel

            full = AutoModel.from_pretrained(name_or_path, **kwargs)
            model = next((m for m in full.modules() if isinstance(m, model_class)), None)
            if model is None:
                raise ValueError(f"{type(full).__name__} in {name_or_path} has no {model_class.__name__} vision tower")
        adapter = adapter_class(sub_config, num_frames, feature_layer, readout_depth, model=model.eval())
        adapter.read_normalization(name_or_path)
        return adapter.eval()

    def read_normalization(self, name_or_path: str) -> None:
        """Take ``image_mean`` / ``image_std`` from a local folder's processor config (transformers backbones)."""
        if self.image_mean is None:
            return
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            path = Path(name_or_path) / name
            if path.is_file():
                settings = json.loads(path.read_text())
                if settings.get("do_normalize", True) is False:
                    self.image_mean, self.image_std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
                elif "image_mean" in settings and "image_std" in settings:
                    self.image_mean, self.image_std = tuple(settings["image_mean"]), tuple(settings["image_std"])
                return


# ----------------------------------------------------------------------------------------------------------------------
# rep4d backbones: the model's own get_video_features


class Rep4dBackboneAdapter(BackboneAdapter):
    """rep4d backbones (4DS, MooG, RVM): ``model.get_video_features`` as is (no per-model code here).

    4DS: the readout-depth features (``config.readout_depth``; ``feature_layer`` selects a hidden state);
    RVM: patch tokens (CLS dropped), the state carried by ``state=``; MooG: the corrected latent states
    (``grid_features=True``: the per-frame encoder tokens on the pixel grid). Inputs are [0, 1] videos.
    """

    def get_video_features(self, pixel_values: torch.Tensor, **kwargs) -> VideoFeaturesOutput:
        if self.feature_layer is not None:
            kwargs.setdefault("feature_layer", self.feature_layer)
        return self.model.get_video_features(pixel_values, **kwargs)


class FourDSBackboneAdapter(Rep4dBackboneAdapter):
    """4DS: the features at ``config.readout_depth`` (or the ``hidden_states[feature_layer]``).

    * Blocks: the backbone is built with ``FourDSModel(config, readout_only=True)`` (only the blocks up to the readout
      layer) unless an explicit ``feature_layer`` reads a higher block (or counts from the end, a negative index):
      every parameter then takes part in the forward pass (plain DDP, gradient checkpointing), and the higher blocks
      of a full checkpoint are expected-unused when loading.
    * Frame size: 4DS's position table is learned on one (t, h, w) token grid; features of any other grid need it
      resampled (cubic, ``interpolate_pos_encoding``), so the adapter always asks for it. On the trained grid the
      table is used as is, so this changes nothing there. Callers never set ``config.interpolate_pos_encoding``.
    """

    model_class = FourDSModel

    @classmethod
    def readout_only(cls, config, feature_layer: int | None = None) -> bool:
        """Whether the blocks up to the readout layer are all that ``feature_layer`` (None: the readout depth)
        needs."""
        if feature_layer is None:
            return True
        return 0 <= int(feature_layer) <= hidden_state_index(config.num_hidden_layers, config.readout_depth)

    @classmethod
    def model_init_kwargs(cls, config, feature_layer: int | None = None) -> dict:
        return {"readout_only": True} if cls.readout_only(config, feature_layer) else {}

    def get_video_features(self, pixel_values: torch.Tensor, **kwargs) -> VideoFeaturesOutput:
        # Resample the position table whenever the token grid differs from the trained one (see the class docstring).
        kwargs.setdefault("interpolate_pos_encoding", True)
        return super().get_video_features(pixel_values, **kwargs)

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        return (int(image_size[0]) // config.tubelet_size[1]) * (int(image_size[1]) // config.tubelet_size[2])

    @classmethod
    def clip_length(cls, config) -> int:
        return int(config.num_frames)


class MooGBackboneAdapter(Rep4dBackboneAdapter):
    model_class = MooGModel

    @classmethod
    def feature_dim(cls, config) -> int:
        return config.token_size

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        return int(config.num_tokens)


class RVMBackboneAdapter(Rep4dBackboneAdapter):
    """RVM reads any number of frames; the readout's ``num_frames`` (default 16) must equal the clip length."""

    model_class = RVMModel

    @classmethod
    def default_num_frames(cls, config) -> int:
        return int(getattr(config, "num_frames", None) or 16)

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        return (int(image_size[0]) // config.patch_size) * (int(image_size[1]) // config.patch_size)


# ----------------------------------------------------------------------------------------------------------------------
# transformers' backbones: hidden states at the readout depth


class TransformersBackboneAdapter(BackboneAdapter):
    """transformers' video and image backbones through their ``hidden_states`` (see the module docstring).

    Subclasses set ``model_class``, ``input_name``, ``frames_as_images`` (image models and X-CLIP: the B*T frames go
    through the model as one batch of images), ``token_order`` (``"thw"`` or ``"hwt"``: how the tokens after the
    special ones are laid out) and the classmethods ``num_special_tokens`` / ``patch_size`` / ``tubelet_frames``.
    """

    input_name: ClassVar[str] = "pixel_values"
    frames_as_images: ClassVar[bool] = False
    token_order: ClassVar[str] = "thw"
    use_hidden_states: ClassVar[bool] = True
    pixel_mean = tuple(IMAGENET_DEFAULT_MEAN)
    pixel_std = tuple(IMAGENET_DEFAULT_STD)

    @classmethod
    def num_special_tokens(cls, config) -> int:
        return 0

    @classmethod
    def patch_size(cls, config) -> tuple[int, int]:
        return _pair(config.patch_size)

    @classmethod
    def tubelet_frames(cls, config) -> int:
        return 1

    @classmethod
    def default_num_frames(cls, config) -> int:
        config = cls.backbone_config_of(config)
        return int(getattr(config, "num_frames", None) or 16)

    @classmethod
    def clip_length(cls, config) -> int | None:
        return None if cls.frames_as_images else cls.default_num_frames(config)

    @classmethod
    def tokens_per_frame(cls, config, image_size) -> int:
        ph, pw = cls.patch_size(cls.backbone_config_of(config))
        return (int(image_size[0]) // ph) * (int(image_size[1]) // pw)

    def model_inputs(self, pixel_values: torch.Tensor) -> dict:
        """(B, T, C, H, W) -> the keyword arguments of the backbone's forward."""
        if self.frames_as_images:
            pixel_values = pixel_values.flatten(0, 1)
        return {self.input_name: pixel_values}

    def layer_index(self, num_hidden_states: int) -> int:
        if self.feature_layer is not None:
            if not -num_hidden_states <= self.feature_layer < num_hidden_states:
                raise ValueError(
                    f"feature_layer must index the {num_hidden_states} hidden states (embeddings first), "
                    f"got {self.feature_layer}"
                )
            return self.feature_layer
        return hidden_state_index(num_hidden_states - 1, self.readout_depth)

    def get_video_features(self, pixel_values: torch.Tensor, **kwargs) -> VideoFeaturesOutput:
        _check_video(pixel_values)
        config = self.model.config
        batch, frames, _, height, width = pixel_values.shape
        ph, pw = self.patch_size(config)
        grid = (height // ph, width // pw)
        dtype = next(self.model.parameters()).dtype
        outputs = self.model(**self.model_inputs(pixel_values.to(dtype)), output_hidden_states=self.use_hidden_states)
        if self.use_hidden_states:
            tokens = outputs.hidden_states[self.layer_index(len(outputs.hidden_states))]
        else:
            if self.feature_layer is not None:
                raise ValueError(f"{type(self).__name__} reads last_hidden_state; feature_layer must be None")
            tokens = outputs.last_hidden_state
        tokens = tokens[:, self.num_special_tokens(config) :]
        token_frames = frames if self.frames_as_images else frames // self.tubelet_frames(config)
        per_item = tokens.shape[1] * (frames if self.frames_as_images else 1)
        if per_item != token_frames * grid[0] * grid[1]:
            raise ValueError(
                f"{type(self.model).__name__} returned {tokens.shape[1]} patch tokens, not the {token_frames} x "
                f"{grid[0]} x {grid[1]} grid of {frames} frames of {height}x{width}"
            )
        if self.token_order == "hwt":
            features = tokens.reshape(batch, grid[0] * grid[1], token_frames, -1).transpose(1, 2)
        else:
            features = tokens.reshape(batch, token_frames, grid[0] * grid[1], -1)
        return VideoFeaturesOutput(features=resample_frames(features, frames), grid_size=grid)


class _VisionPart:
    """Mixin for families whose repos hold a text-vision model: the adapter builds the vision tower only."""

    @classmethod
    def backbone_config_of(cls, config):
        return getattr(config, "vision_config", None) or config


class VideoMAEBackboneAdapter(TransformersBackboneAdapter):
    model_class = _TransformersClass("VideoMAEModel")
    pixel_mean, pixel_std = tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)

    @classmethod
    def tubelet_frames(cls, config) -> int:
        return int(config.tubelet_size)


class VJEPA2BackboneAdapter(TransformersBackboneAdapter):
    """V-JEPA 2's encoder (the predictor is skipped); clips of ``frames_per_clip`` frames of ``crop_size``."""

    model_class = _TransformersClass("VJEPA2Model")
    input_name = "pixel_values_videos"

    def model_inputs(self, pixel_values):
        return {"pixel_values_videos": pixel_values, "skip_predictor": True}

    @classmethod
    def tubelet_frames(cls, config) -> int:
        return int(config.tubelet_size)

    @classmethod
    def default_num_frames(cls, config) -> int:
        return int(config.frames_per_clip)

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        return list(_pair(config.crop_size))


class TimesformerBackboneAdapter(TransformersBackboneAdapter):
    """TimeSformer: CLS first, then the patches laid out (h*w, t) (space-major)."""

    model_class = _TransformersClass("TimesformerModel")
    token_order = "hwt"
    pixel_mean, pixel_std = tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)

    @classmethod
    def num_special_tokens(cls, config) -> int:
        return 1


class VivitBackboneAdapter(TransformersBackboneAdapter):
    model_class = _TransformersClass("VivitModel")
    pixel_mean, pixel_std = tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)

    @classmethod
    def num_special_tokens(cls, config) -> int:
        return 1

    @classmethod
    def patch_size(cls, config) -> tuple[int, int]:
        return int(config.tubelet_size[1]), int(config.tubelet_size[2])

    @classmethod
    def tubelet_frames(cls, config) -> int:
        return int(config.tubelet_size[0])


class Dinov2BackboneAdapter(TransformersBackboneAdapter):
    """DINOv2 (and with registers, DINOv3): frame by frame; CLS and register tokens dropped."""

    model_class = _TransformersClass("Dinov2Model")
    frames_as_images = True

    @classmethod
    def num_special_tokens(cls, config) -> int:
        return 1 + int(getattr(config, "num_register_tokens", 0) or 0)

    @classmethod
    def default_num_frames(cls, config) -> int:
        return 16


class Dinov2WithRegistersBackboneAdapter(Dinov2BackboneAdapter):
    model_class = _TransformersClass("Dinov2WithRegistersModel")


class DINOv3ViTBackboneAdapter(Dinov2BackboneAdapter):
    model_class = _TransformersClass("DINOv3ViTModel")


class SiglipBackboneAdapter(_VisionPart, TransformersBackboneAdapter):
    """SigLIP's vision tower frame by frame (no CLS); the position table is interpolated for other sizes."""

    model_class = _TransformersClass("SiglipVisionModel")
    frames_as_images = True
    pixel_mean, pixel_std = tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)

    def model_inputs(self, pixel_values):
        height, width = pixel_values.shape[-2:]
        interpolate = tuple(_pair(self.model.config.image_size)) != (height, width)
        return {"pixel_values": pixel_values.flatten(0, 1), "interpolate_pos_encoding": interpolate}

    @classmethod
    def default_num_frames(cls, config) -> int:
        return 16

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        return list(_pair(cls.backbone_config_of(config).image_size))


class Siglip2BackboneAdapter(SiglipBackboneAdapter):
    """SigLIP 2 (NaFlex) frame by frame: each frame is one sequence of (h*w) patches of the full frame."""

    model_class = _TransformersClass("Siglip2VisionModel")

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        side = int(math.isqrt(int(cls.backbone_config_of(config).num_patches))) * cls.patch_size(config)[0]
        return [side, side]

    def model_inputs(self, pixel_values):
        frames = pixel_values.flatten(0, 1)
        count, channels, height, width = frames.shape
        ph, pw = self.patch_size(self.model.config)
        h, w = height // ph, width // pw
        frames = frames[..., : h * ph, : w * pw]
        # Siglip2ImageProcessor's patch layout: (h, w) patches of (ph, pw, C) pixels.
        patches = frames.reshape(count, channels, h, ph, w, pw).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(count, h * w, ph * pw * channels)
        mask = torch.ones(count, h * w, dtype=torch.long, device=frames.device)
        shapes = torch.tensor([[h, w]] * count, dtype=torch.long, device=frames.device)
        return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}


class XCLIPBackboneAdapter(_VisionPart, TransformersBackboneAdapter):
    """X-CLIP's vision tower: frames of a clip as one batch of images, exchanging message tokens, so a clip
    has exactly ``num_frames`` frames; CLS dropped."""

    model_class = _TransformersClass("XCLIPVisionModel")
    frames_as_images = True
    pixel_mean, pixel_std = tuple(OPENAI_CLIP_MEAN), tuple(OPENAI_CLIP_STD)

    @classmethod
    def num_special_tokens(cls, config) -> int:
        return 1

    @classmethod
    def clip_length(cls, config) -> int:
        return int(cls.backbone_config_of(config).num_frames)

    def model_inputs(self, pixel_values):
        frames, expected = pixel_values.shape[1], int(self.model.config.num_frames)
        if frames != expected:
            raise ValueError(f"X-CLIP's vision tower reads clips of exactly num_frames={expected} frames, got {frames}")
        return super().model_inputs(pixel_values)


class VideoPrismBackboneAdapter(_VisionPart, TransformersBackboneAdapter):
    """VideoPrism's factorised encoder: ``last_hidden_state`` (T, h, w) (see the module docstring); [0, 1]
    inputs."""

    model_class = _TransformersClass("VideoPrismVisionModel")
    input_name = "pixel_values_videos"
    use_hidden_states = False
    pixel_mean, pixel_std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    @classmethod
    def patch_size(cls, config) -> tuple[int, int]:
        return int(config.tubelet_size[1]), int(config.tubelet_size[2])

    def model_inputs(self, pixel_values):
        height, width = pixel_values.shape[-2:]
        interpolate = tuple(_pair(self.model.config.image_size)) != (height, width)
        return {"pixel_values_videos": pixel_values, "interpolate_pos_encoding": interpolate}


_TIMM_TOWERS: dict[tuple[str, str], nn.Module] = {}


def _timm_tower(config):
    """The timm model a ``TimmWrapperConfig`` describes, built on the meta device (no weights, no download): its
    width, patch size, trained frame size, prefix tokens and depth, read without building the real model."""
    key = (config.architecture, json.dumps(config.model_args or {}, sort_keys=True, default=str))
    if key not in _TIMM_TOWERS:
        try:
            import timm
        except ImportError as error:
            raise ImportError(
                f"the {config.architecture} vision tower is a timm model: pip install timm (or rep4d[backbones])"
            ) from error
        with torch.device("meta"):
            _TIMM_TOWERS[key] = timm.create_model(config.architecture, pretrained=False, **(config.model_args or {}))
    return _TIMM_TOWERS[key]


def timm_hidden_state(vit: nn.Module, images: torch.Tensor, index: int) -> torch.Tensor:
    """``hidden_states[index]`` (embeddings first, prefix tokens included, (N, L, C)) of a timm ViT on (N, 3, H, W)
    images: the input of block ``index`` (the output of the last block for ``index == len(blocks)``), caught by a
    hook while ``forward_intermediates`` runs the blocks up to it only."""
    blocks = vit.blocks
    captured: list[torch.Tensor] = []
    if index < len(blocks):
        handle = blocks[index].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    else:
        handle = blocks[-1].register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        vit.forward_intermediates(images, indices=[min(index, len(blocks) - 1)], output_fmt="NLC",
                                  intermediates_only=True, stop_early=True)  # fmt: skip
    finally:
        handle.remove()
    return captured[0]


class PeVideoBackboneAdapter(TransformersBackboneAdapter):
    """Perception Encoder (``pe_video``): its spatial tower frame by frame.

    PE's video encoder (``PeVideoEncoder``) runs a timm ViT (``TimmWrapperForImageClassification`` around an ``Eva``)
    on each frame, pools each frame to ONE embedding (attention pooling, projection) and only then mixes frames in its
    temporal transformer: the temporal model never sees a token grid. So, as the 4DS paper does for image backbones,
    the 4D readouts read the spatial tower: each frame through the timm ViT, the residual stream at the readout depth
    (:func:`timm_hidden_state`, the same relative-depth rule), prefix tokens (CLS, registers) dropped, the (h, w)
    patch grid kept. Needs ``timm`` (``pip install rep4d[backbones]``). Frames must have the tower's trained size
    (``model_args["img_size"]``) unless the tower was built with ``dynamic_img_size=True``. PE normalises pixels
    with mean = std = 0.5 (timm's ``pretrained_cfg``).
    """

    model_class = _TransformersClass("TimmWrapperForImageClassification")
    frames_as_images = True
    pixel_mean, pixel_std = tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)

    @classmethod
    def backbone_config_of(cls, config):
        config = getattr(config, "video_config", None) or config  # pe_video -> its pe_video_encoder
        return getattr(config, "vision_config", None) or config  # pe_video_encoder -> the timm tower

    @classmethod
    def feature_dim(cls, config) -> int:
        return int(_timm_tower(cls.backbone_config_of(config)).embed_dim)

    @classmethod
    def patch_size(cls, config) -> tuple[int, int]:
        return _pair(_timm_tower(cls.backbone_config_of(config)).patch_embed.patch_size)

    @classmethod
    def default_image_size(cls, config) -> list[int]:
        return list(_pair(_timm_tower(cls.backbone_config_of(config)).patch_embed.img_size))

    def get_video_features(self, pixel_values: torch.Tensor, **kwargs) -> VideoFeaturesOutput:
        _check_video(pixel_values)
        vit = self.model.timm_model
        batch, frames, _, height, width = pixel_values.shape
        trained = tuple(_pair(vit.patch_embed.img_size))
        if not getattr(vit, "dynamic_img_size", False) and trained != (height, width):
            raise ValueError(
                f"this pe_video vision tower reads {trained[0]}x{trained[1]} frames (timm img_size, no "
                f"dynamic_img_size), got {height}x{width}: use --resolution {trained[0]}x{trained[1]}"
            )
        ph, pw = _pair(vit.patch_embed.patch_size)
        grid = (height // ph, width // pw)
        num_hidden_states = len(vit.blocks) + 1
        index = self.layer_index(num_hidden_states) % num_hidden_states
        images = pixel_values.flatten(0, 1).to(next(self.model.parameters()).dtype)
        tokens = timm_hidden_state(vit, images, index)[:, vit.num_prefix_tokens :]
        return VideoFeaturesOutput(features=tokens.reshape(batch, frames, grid[0] * grid[1], -1), grid_size=grid)


TRANSFORMERS_ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "videomae": VideoMAEBackboneAdapter,
    "vjepa2": VJEPA2BackboneAdapter,
    "timesformer": TimesformerBackboneAdapter,
    "vivit": VivitBackboneAdapter,
    "dinov2": Dinov2BackboneAdapter,
    "dinov2_with_registers": Dinov2WithRegistersBackboneAdapter,
    "dinov3_vit": DINOv3ViTBackboneAdapter,
    "siglip": SiglipBackboneAdapter,
    "siglip_vision_model": SiglipBackboneAdapter,
    "siglip2": Siglip2BackboneAdapter,
    "siglip2_vision_model": Siglip2BackboneAdapter,
    "xclip": XCLIPBackboneAdapter,
    "xclip_vision_model": XCLIPBackboneAdapter,
    "videoprism": VideoPrismBackboneAdapter,
    "videoprism_vision_model": VideoPrismBackboneAdapter,
    "pe_video": PeVideoBackboneAdapter,
    "pe_video_encoder": PeVideoBackboneAdapter,
}

BACKBONE_ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "fourds": FourDSBackboneAdapter,
    "moog": MooGBackboneAdapter,
    "rvm": RVMBackboneAdapter,
    **TRANSFORMERS_ADAPTERS,
}

# model_type -> why no adapter can exist (a family the readouts cannot read gets a reason here instead of an adapter).
UNSUPPORTED_FAMILIES: dict[str, str] = {}


def register_backbone_adapter(model_type: str, adapter_class: type[BackboneAdapter]) -> None:
    """Make backbones whose config has ``model_type`` usable by every readout head."""
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, BackboneAdapter)):
        raise TypeError(f"adapter_class must subclass BackboneAdapter, got {adapter_class!r}")
    BACKBONE_ADAPTERS[model_type] = adapter_class


def backbone_adapter_class(backbone_config) -> type[BackboneAdapter]:
    model_type = getattr(backbone_config, "model_type", None)
    if model_type in UNSUPPORTED_FAMILIES:
        raise ValueError(f"backbone family {model_type!r} is not supported: {UNSUPPORTED_FAMILIES[model_type]}")
    if model_type not in BACKBONE_ADAPTERS:
        raise ValueError(
            f"no backbone adapter for model_type {model_type!r}; available: {', '.join(sorted(BACKBONE_ADAPTERS))}. "
            "Register one with rep4d.modeling.backbone_adapters.register_backbone_adapter"
        )
    return BACKBONE_ADAPTERS[model_type]


def adapter_for(model_or_adapter, num_frames: int | None = None, **kwargs) -> BackboneAdapter:
    """An adapter around a backbone: a model instance (a task model or a text-vision model is reduced to its
    backbone: its first submodule of the adapter's ``model_class``), a model id or folder
    (:meth:`BackboneAdapter.from_pretrained`), or an adapter (returned as is)."""
    if isinstance(model_or_adapter, BackboneAdapter):
        return model_or_adapter
    if isinstance(model_or_adapter, (str, Path)):
        return BackboneAdapter.from_pretrained(str(model_or_adapter), num_frames, **kwargs)
    config = getattr(model_or_adapter, "config", None)
    if config is None or not isinstance(model_or_adapter, nn.Module):
        raise ValueError(
            f"expected a backbone model, a model id or folder, or a BackboneAdapter, got {type(model_or_adapter)}"
        )
    adapter_class = backbone_adapter_class(config)
    model_class = adapter_class.model_class
    backbone = next((m for m in model_or_adapter.modules() if isinstance(m, model_class)), None)
    if backbone is None:
        raise ValueError(f"{type(model_or_adapter).__name__} holds no {model_class.__name__} backbone")
    return adapter_class(config, num_frames, model=backbone, **kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# Dense features of a whole video


def dense_feature_extractor(model_or_adapter, chunk_size: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function mapping float frames (T, 3, H, W) in [0, 1] to grid features (T, h, w, C), for any backbone: a
    model (rep4d's or transformers'; a task model is reduced to its backbone), a model id or folder, or an adapter.

    How a video of any length T is read:

    * recurrent backbones (RVM; whatever returns a ``final_state``) stream it in chunks of ``chunk_size`` frames
      (default 8) with the state carried from chunk to chunk: the features equal one pass over the whole video;
    * fixed-clip video backbones (4DS and transformers' video models: ``clip_length`` frames, e.g. 4DS's
      ``num_frames``) read consecutive non-overlapping clips of that length; the last clip is completed by repeating
      the final frame and the padded frames' features are dropped. Features do not see across clip boundaries;
    * image backbones and MooG's encoder read ``chunk_size`` (default 8) frames per batch, each frame on its own.

    Frames of any size: a learned position table (4DS, SigLIP, VideoPrism) is resampled to the token grid whenever
    the grid differs from the trained one, by the adapter (callers never set ``config.interpolate_pos_encoding``).
    MooG's latent tokens are not tied to pixel positions, so MooG gives its per-frame encoder tokens
    (``get_video_features(..., grid_features=True)``). transformers' backbones get their pixel normalisation
    (:meth:`BackboneAdapter.normalize`). The returned function runs under ``torch.no_grad`` on the model's device
    and dtype and returns float32 features on that device.
    """
    adapter = adapter_for(model_or_adapter).eval()
    config = adapter.model.config
    clip = adapter.clip_length(config)
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive number of frames, got {chunk_size}")
    step = clip or int(chunk_size or 8)
    parameter = next(adapter.model.parameters())

    @torch.no_grad()
    def extract(frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be a float (T, 3, H, W) tensor in [0, 1], got {shape}")
        if not frames.is_floating_point():
            raise ValueError(f"frames must be float in [0, 1], got dtype {frames.dtype} (divide uint8 frames by 255)")
        total = frames.shape[0]
        frames = adapter.normalize(frames.to(device=parameter.device, dtype=torch.float32))
        outputs, state = [], None
        for start in range(0, total, step):
            chunk = frames[start : start + step]
            count = chunk.shape[0]
            if clip and count < clip:
                chunk = torch.cat([chunk, chunk[-1:].expand(clip - count, -1, -1, -1)])
            kwargs = {"grid_features": True} if state is None else {"grid_features": True, "state": state}
            result = adapter.get_video_features(chunk[None].to(parameter.dtype), **kwargs)
            if result.grid_size is None:
                raise ValueError(f"{type(adapter.model).__name__} features are not on a token grid")
            state = result.final_state
            outputs.append(result.features[0, :count].float())
        features = torch.cat(outputs)
        return features.reshape(total, *result.grid_size, features.shape[-1])

    return extract


__all__ = [
    "BackboneAdapter",
    "Rep4dBackboneAdapter",
    "FourDSBackboneAdapter",
    "MooGBackboneAdapter",
    "RVMBackboneAdapter",
    "TransformersBackboneAdapter",
    "VideoMAEBackboneAdapter",
    "VJEPA2BackboneAdapter",
    "TimesformerBackboneAdapter",
    "VivitBackboneAdapter",
    "Dinov2BackboneAdapter",
    "Dinov2WithRegistersBackboneAdapter",
    "DINOv3ViTBackboneAdapter",
    "SiglipBackboneAdapter",
    "Siglip2BackboneAdapter",
    "XCLIPBackboneAdapter",
    "VideoPrismBackboneAdapter",
    "PeVideoBackboneAdapter",
    "BACKBONE_ADAPTERS",
    "READOUT_DEPTHS",
    "UNSUPPORTED_FAMILIES",
    "adapter_for",
    "backbone_adapter_class",
    "dense_feature_extractor",
    "hidden_state_index",
    "register_backbone_adapter",
    "timm_hidden_state",
]
