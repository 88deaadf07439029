"""Attention-readout heads for 4D perception on frozen or fine-tuned video backbones.

The evaluation protocol of the 4DS ("Scaling 4D Representations"), MooG and RVM papers: a cross-attention readout
(:class:`AttentionReadout`) reads (B, T, N, C) backbone features with task-specific queries.

- :class:`ReadoutForDepthEstimation`: per-patch learned queries (the released 4DS depth head) or Fourier-encoded
  patch-centre coordinate queries; masked L2 loss.
- :class:`ReadoutForPointTracking`: one query per track from its query point (t, y, x); per frame a position
  offset, a visibility and a certainty logit; Huber + BCE + BCE losses (TAPIR style).
- :class:`ReadoutForBoxTracking`: one query per box from its first-frame box; L2 loss on normalised boxes.
- :class:`ReadoutForCameraPose`: one learned query over the first and last frames' features concatenated along
  channels; 12 outputs: a 3x3 matrix projected to SO(3) (SVD / Procrustes) and a translation; L2 loss on the 3x4
  pose matrix.
- :class:`ReadoutForVideoClassification`: one learned query; cross-entropy; multi-clip averaging at evaluation.

Every head owns its backbone through a :class:`~.backbone_adapters.BackboneAdapter` built from
``config.backbone_config``, so a head saves and loads as one model. Pass ``features=`` instead of ``pixel_values``
to skip the backbone (cached features, frozen mode).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from ..configuration.configuration_readout import ReadoutConfig
from ..configuration.readout_tasks import READOUT_TASK_SPECS, check_boxes
from .attention_readout import AttentionReadout
from .backbone_adapters import BACKBONE_ADAPTERS, backbone_adapter_class
from .losses import (
    box_tracking_loss,
    camera_pose_loss,
    classification_loss,
    depth_loss,
    log_depth_loss,
    point_tracking_loss,
)
from .outputs import BoxTrackingOutput, DepthEstimationOutput, PointTrackingOutput
from .patches import patches_to_video
from .pretrained import init_reference_weights

# Initial visibility and certainty logits of an untrained point head: sigmoid(2)^2 = 0.78 > 0.5, predicted visible.
POINT_INITIAL_LOGIT = 2.0


# --------------------------------------------------------------------------------------------------------------------
# Outputs


# Depth, points and boxes return the outputs shared with MooG's heads (rep4d.modeling.outputs); the earlier names
# stay importable.
DepthReadoutOutput = DepthEstimationOutput
PointTrackingReadoutOutput = PointTrackingOutput
BoxTrackingReadoutOutput = BoxTrackingOutput


@dataclass
class CameraPoseReadoutOutput(ModelOutput):
    """rotation: (B, 3, 3) in SO(3); translation: (B, 3); together the pose ``[R | t]`` of the last camera in the
    first camera's frame; raw_rotation: (B, 3, 3) before the projection; hidden_states / attentions / final_state:
    the backbone's (as :class:`~rep4d.modeling.outputs.PointTrackingOutput`)."""

    loss: torch.FloatTensor | None = None
    rotation: torch.FloatTensor | None = None
    translation: torch.FloatTensor | None = None
    raw_rotation: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    final_state: torch.FloatTensor | None = None


@dataclass
class VideoClassificationReadoutOutput(ModelOutput):
    """logits: (B, K) per clip (multi-clip evaluation averages their softmaxes per video:
    :func:`rep4d.training.metrics.average_clips`); hidden_states / attentions / final_state: the backbone's (as
    :class:`~rep4d.modeling.outputs.PointTrackingOutput`)."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    final_state: torch.FloatTensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def fourier_encode(coords: torch.Tensor, num_bands: int) -> torch.Tensor:
    """(..., d) coordinates in [0, 1] -> (..., d + 2*d*num_bands): the coordinates, then sin and cos of
    ``pi * 2^k * coords`` for k < num_bands."""
    frequencies = math.pi * 2.0 ** torch.arange(num_bands, device=coords.device, dtype=coords.dtype)
    angles = (coords[..., None] * frequencies).flatten(-2)
    return torch.cat([coords, torch.sin(angles), torch.cos(angles)], dim=-1)


def fourier_dim(num_coords: int, num_bands: int) -> int:
    return num_coords * (1 + 2 * num_bands)


def project_to_rotation(matrix: torch.Tensor) -> torch.Tensor:
    """Nearest rotation (Procrustes, det +1) to each (..., 3, 3) matrix: ``U diag(1, 1, det(U V^T)) V^T``."""
    u, _, vh = torch.linalg.svd(matrix.float())
    det = torch.det(u @ vh)
    ones = torch.ones_like(det)
    correction = torch.diag_embed(torch.stack([ones, ones, det], dim=-1))
    return (u @ correction @ vh).to(matrix.dtype)


def _require(name: str, value, task: str, hint: str) -> torch.Tensor:
    if value is None:
        raise ValueError(f"the {task} readout needs `{name}` ({hint}) to compute its loss; it was not given")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor ({hint}), got {type(value).__name__}")
    return value


def _check_shape(name: str, tensor: torch.Tensor, expected: tuple, layout: str) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"`{name}` must have shape {tuple(expected)} {layout}, got {tuple(tensor.shape)}")


# --------------------------------------------------------------------------------------------------------------------
# Base class


class ReadoutPreTrainedModel(PreTrainedModel):
    """A backbone (through its adapter, ``self.backbone``) plus a task readout (``self.readout``)."""

    config: ReadoutConfig
    config_class = ReadoutConfig
    # The backbone (held by its adapter, ``backbone.model``) is the base model; every weight of it is under
    # ``backbone.``.
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    accepts_loss_kwargs = False
    task: str = ""

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        if config.task != self.task:
            raise ValueError(
                f"{type(self).__name__} is the {self.task!r} readout but the config has task={config.task!r}; "
                f"use ReadoutConfig(task={self.task!r}) or the class for {config.task!r} (readout_class_for_task)"
            )
        adapter_class = backbone_adapter_class(config.backbone_config)
        self.backbone = adapter_class(config.backbone_config, config.num_frames, config.backbone_feature_layer)
        self.feature_dim = adapter_class.feature_dim(config.backbone_config)
        self.num_frames = self.backbone.num_frames
        self.image_size = list(config.image_size or adapter_class.default_image_size(config.backbone_config))
        self.feature_position_embedding = None
        if config.feature_position_embedding:
            tokens = adapter_class.tokens_per_frame(config.backbone_config, self.image_size)
            if not tokens:
                raise ValueError(
                    f"feature_position_embedding needs the token count of the {adapter_class.__name__} features; "
                    "this adapter does not define tokens_per_frame"
                )
            self.feature_position_embedding = nn.Parameter(torch.zeros(tokens, self.feature_dim))
        for module in self.backbone.modules():
            # The backbone initialises itself; the readout's _init_weights leaves it alone.
            module._rep4d_backbone = True
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)

    def build_readout(
        self,
        num_classes: int,
        num_queries: int | None = None,
        query_dim: int | None = None,
        num_frames: int | None = None,
        input_dim: int | None = None,
    ) -> AttentionReadout:
        config = self.config
        return AttentionReadout(
            config,
            input_dim=input_dim or self.feature_dim,
            num_params=config.readout_num_params,
            num_heads=config.readout_num_heads,
            num_classes=num_classes,
            num_queries=num_queries,
            query_dim=query_dim,
            num_frames=num_frames or self.num_frames,
            layer_norm_eps=config.layer_norm_eps,
            mlp_ratio=config.readout_mlp_ratio,
            act=config.hidden_act,
            squeeze_single_query=False,
        )

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_rep4d_backbone", False):
            return
        if module is self and self.feature_position_embedding is not None:
            init.trunc_normal_(self.feature_position_embedding, std=self.config.initializer_range)
        init_reference_weights(module, self.config.initializer_range)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()  # frozen mode: no dropout / batch statistics updates in the backbone
        return self

    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) video -> (B, T, N, C) backbone features (no gradients in frozen mode); cache these and
        pass them as ``features=`` to skip the backbone."""
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 5:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
            raise ValueError(f"pixel_values must be a (batch, frames, channels, height, width) tensor, got {shape}")
        if self.config.freeze_backbone:
            with torch.no_grad():
                return self.backbone(pixel_values).detach()
        return self.backbone(pixel_values)

    def get_input_embeddings(self) -> nn.Module:
        """The backbone's input embedding (its patch / tubelet embedding, or MooG's per-frame encoder)."""
        return self.backbone.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.model.set_input_embeddings(value)

    @contextmanager
    def _backbone_outputs(self, output_hidden_states: bool, output_attentions: bool):
        """Record the backbone's output during feature extraction (one backbone pass): its ``final_state`` (recurrent
        backbones) and, when asked, its ``hidden_states`` / ``attentions`` (the flags are passed to its forward)."""
        record: dict = {}
        model = self.backbone.model

        def ask(module, args, kwargs):
            if output_hidden_states:
                kwargs["output_hidden_states"] = True
            if output_attentions:
                kwargs["output_attentions"] = True
            return args, kwargs

        def keep(module, args, kwargs, output):
            record["outputs"] = output

        handles = [model.register_forward_hook(keep, with_kwargs=True)]
        if output_hidden_states or output_attentions:
            handles.append(model.register_forward_pre_hook(ask, with_kwargs=True))
        try:
            yield record
        finally:
            for handle in handles:
                handle.remove()

    def backbone_features(
        self,
        pixel_values: torch.Tensor | None,
        features: torch.Tensor | None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """(B, T, N, C) features (from ``pixel_values`` through the backbone, or given) and the backbone outputs the
        task outputs carry: ``{"hidden_states", "attentions", "final_state"}`` (None when not asked, or when
        precomputed ``features`` were given)."""
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        extras = {"hidden_states": None, "attentions": None, "final_state": None}
        if pixel_values is None:
            return self.features_from(pixel_values, features), extras
        with self._backbone_outputs(bool(output_hidden_states), bool(output_attentions)) as record:
            result = self.features_from(pixel_values, features)
        outputs = record.get("outputs")
        extras["final_state"] = getattr(outputs, "final_state", None)
        if output_hidden_states:
            extras["hidden_states"] = getattr(outputs, "hidden_states", None)
        if output_attentions:
            extras["attentions"] = getattr(outputs, "attentions", None)
        return result, extras

    def features_from(self, pixel_values: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor:
        if (pixel_values is None) == (features is None):
            raise ValueError(
                "pass exactly one of `pixel_values` (B, T, C, H, W) or precomputed `features` (B, T, N, C)"
            )
        if features is None:
            return self.add_feature_positions(self.extract_features(pixel_values))
        if features.ndim != 4 or features.shape[1] != self.num_frames or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"`features` must have shape (batch, {self.num_frames}, tokens, {self.feature_dim}), "
                f"got {tuple(features.shape)}"
            )
        return self.add_feature_positions(features)

    def add_feature_positions(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features plus the learned per-token position embedding (if ``feature_position_embedding``)."""
        if self.feature_position_embedding is None:
            return features
        if features.shape[2] != self.feature_position_embedding.shape[0]:
            raise ValueError(
                f"the feature position embedding has {self.feature_position_embedding.shape[0]} tokens per frame, "
                f"the features have {features.shape[2]}"
            )
        return features + self.feature_position_embedding.to(features.dtype)

    def frame_size(self, pixel_values: torch.Tensor | None) -> tuple[int, int]:
        if pixel_values is not None:
            return int(pixel_values.shape[-2]), int(pixel_values.shape[-1])
        return int(self.image_size[0]), int(self.image_size[1])

    @classmethod
    def from_backbone(cls, backbone: PreTrainedModel, backbone_name_or_path: str | None = None, **config_kwargs):
        """A new readout around a pretrained ``backbone`` (its config and weights are copied into the readout)."""
        model_type = getattr(getattr(backbone, "config", None), "model_type", None)
        if not isinstance(backbone, PreTrainedModel) or model_type not in BACKBONE_ADAPTERS:
            family = model_type or type(backbone).__name__
            raise ValueError(
                f"expected a video backbone of a family with a backbone adapter "
                f"({', '.join(sorted(BACKBONE_ADAPTERS))}), got a {family!r} model ({type(backbone).__name__})"
            )
        config = ReadoutConfig(
            task=cls.task,
            backbone_config=backbone.config,
            backbone_name_or_path=backbone_name_or_path or getattr(backbone, "name_or_path", None) or None,
            **config_kwargs,
        )
        model = cls(config)
        model.backbone.model.load_state_dict(backbone.state_dict())
        return model


# --------------------------------------------------------------------------------------------------------------------
# Depth


class ReadoutForDepthEstimation(ReadoutPreTrainedModel):
    """Dense depth: each query decodes a ``decoding_patch_size`` block of the (T, H, W) depth video."""

    task = "depth"

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        patch = config.decoding_patch_size
        self.output_shape = (self.num_frames, *self.image_size, 1)
        if any(size % p for size, p in zip(self.output_shape[:3], patch)):
            raise ValueError(f"depth output {self.output_shape[:3]} is not divisible by decoding_patch_size {patch}")
        grid = [size // p for size, p in zip(self.output_shape[:3], patch)]
        num_queries, num_classes = math.prod(grid), math.prod(patch)
        if config.depth_query_type == "patch":
            self.readout = self.build_readout(num_classes, num_queries=num_queries)
        else:
            # Patch centres (t, y, x) normalised to [0, 1], in the row-major order patches_to_video expects.
            axes = [(torch.arange(n, dtype=torch.float32) + 0.5) / n for n in grid]
            centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
            self.register_buffer("query_coordinates", centres, persistent=False)
            self.readout = self.build_readout(num_classes, query_dim=fourier_dim(3, config.num_fourier_bands))
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> DepthEstimationOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) video, as the backbone expects it.
            depth: optional (B, T, H, W) ground-truth depth (the loss target).
            valid_mask: optional (B, T, H, W) bool mask of valid depth (default: finite depth > 0).
            features: (B, T, N, C) precomputed backbone features, instead of ``pixel_values``.
            output_attentions / output_hidden_states: return the backbone's attentions / hidden states (as the
                backbone lays them out; None with precomputed ``features``).
        """
        features, backbone_outputs = self.backbone_features(
            pixel_values, features, output_hidden_states, output_attentions
        )
        queries = None
        if self.config.depth_query_type == "coordinate":
            encoded = fourier_encode(self.query_coordinates.to(features.dtype), self.config.num_fourier_bands)
            queries = encoded.unsqueeze(0).expand(features.shape[0], -1, -1)
        logits = self.readout(features, queries)
        predicted = patches_to_video(logits, self.output_shape, self.config.decoding_patch_size)[..., 0]
        # Depth in the data's units around its mean: an untrained head predicts the mean depth, not 0.
        predicted = self.config.depth_mean + self.config.depth_std * predicted
        loss = None
        if depth is not None:
            _check_shape("depth", depth, predicted.shape, "(batch, frames, height, width)")
            if self.config.depth_loss_type in ("log_l2", "log_l1"):
                loss = log_depth_loss(predicted, depth, valid_mask, norm=self.config.depth_loss_type[4:])
            else:
                loss = depth_loss(predicted, depth, valid_mask)
        elif valid_mask is not None:
            raise ValueError("`valid_mask` was given without `depth`")
        return DepthEstimationOutput(loss=loss, predicted_depth=predicted, **backbone_outputs)


# --------------------------------------------------------------------------------------------------------------------
# Point tracking


def check_point_targets(query_points, tracks, occluded, num_frames: int, height: int, width: int):
    batch, points = query_points.shape[:2]
    _check_shape("query_points", query_points, (batch, points, 3), "(batch, points, 3) as (t, y, x) pixels")
    t, y, x = query_points.unbind(-1)
    if t.min() < 0 or t.max() > num_frames - 1 or y.min() < 0 or y.max() > height or x.min() < 0 or x.max() > width:
        raise ValueError(
            f"query_points (t, y, x) must lie in the video: t in [0, {num_frames - 1}], y in [0, {height}], "
            f"x in [0, {width}]; got t in [{t.min():.3g}, {t.max():.3g}], y in [{y.min():.3g}, {y.max():.3g}], "
            f"x in [{x.min():.3g}, {x.max():.3g}]"
        )
    if tracks is None and occluded is None:
        return
    tracks = _require("tracks", tracks, "points", "(batch, points, frames, 2) as (x, y) pixels")
    occluded = _require("occluded", occluded, "points", "(batch, points, frames) bool")
    _check_shape("tracks", tracks, (batch, points, num_frames, 2), "(batch, points, frames, 2) as (x, y) pixels")
    _check_shape("occluded", occluded, (batch, points, num_frames), "(batch, points, frames) bool")
    visible = ~occluded.bool()
    xs, ys = tracks[..., 0][visible], tracks[..., 1][visible]
    if xs.numel() and (xs.min() < 0 or xs.max() > width or ys.min() < 0 or ys.max() > height):
        raise ValueError(
            f"visible track points must lie inside the {width}x{height} frame (x in [0, {width}], y in [0, {height}]); "
            f"got x in [{xs.min():.3g}, {xs.max():.3g}], y in [{ys.min():.3g}, {ys.max():.3g}]. "
            "Tracks are (x, y) pixels; mark points that leave the frame as occluded"
        )


class ReadoutForPointTracking(ReadoutPreTrainedModel):
    """Point tracking: one query per track (or per track and ``point_frames_per_query``-frame chunk, as in the 4DS
    paper), from its Fourier-encoded query point (t, y, x).

    Per track and frame the readout predicts an (x, y) offset from the query point (so the untrained head starts at
    the "tracks stay at the query" baseline), a visibility logit and a certainty logit. A point is predicted visible
    when ``sigmoid(visibility) * sigmoid(certainty) > 0.5`` (TAPIR).
    """

    task = "points"

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        query_dim = fourier_dim(3, config.num_fourier_bands)
        if config.point_query_features:
            query_dim += self.feature_dim
        chunk = config.point_frames_per_query
        if chunk:
            if self.num_frames % chunk:
                raise ValueError(
                    f"point_frames_per_query={chunk} must divide the readout's {self.num_frames} frames"
                )
            query_dim += fourier_dim(1, config.num_fourier_bands)  # the chunk's time
        self.frames_per_query = chunk or self.num_frames
        self.readout = self.build_readout(4 * self.frames_per_query, query_dim=query_dim, num_frames=self.frames_per_query)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self.readout:
            # Output layer, per frame (dx, dy, visibility, certainty): zero weights so the untrained head is exactly
            # the "tracks stay at the query, always visible" baseline (a random output layer adds pixels of offset
            # noise), and positive visibility / certainty biases (most ground-truth points are visible; TAPIR's
            # "visible" needs sigmoid(v) * sigmoid(c) > 0.5, which zero logits (0.25) would never give).
            classifier = module.classifier
            init.zeros_(classifier.weight)
            bias = torch.zeros(self.frames_per_query, 4)
            bias[:, 2] = POINT_INITIAL_LOGIT
            bias[:, 3] = POINT_INITIAL_LOGIT
            init.copy_(classifier.bias, bias.flatten())

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        query_points: torch.Tensor | None = None,
        tracks: torch.Tensor | None = None,
        occluded: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> PointTrackingOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) video, as the backbone expects it.
            query_points: (B, N, 3) query points as (t, y, x) in pixels.
            tracks: optional (B, N, T, 2) ground-truth (x, y) pixel positions (loss target, with ``occluded``).
            occluded: optional (B, N, T) bool ground-truth occlusion.
            features: (B, T, N, C) precomputed backbone features, instead of ``pixel_values``.
            output_attentions / output_hidden_states: return the backbone's attentions / hidden states (as the
                backbone lays them out; None with precomputed ``features``).
        """
        query_points = _require("query_points", query_points, "points", "(batch, points, 3) as (t, y, x) pixels")
        features, backbone_outputs = self.backbone_features(
            pixel_values, features, output_hidden_states, output_attentions
        )
        height, width = self.frame_size(pixel_values)
        frames = self.num_frames
        if query_points.ndim != 3 or query_points.shape[0] != features.shape[0]:
            raise ValueError(
                f"`query_points` must have shape ({features.shape[0]}, points, 3) as (t, y, x) pixels, "
                f"got {tuple(query_points.shape)}"
            )
        check_point_targets(query_points, tracks, occluded, frames, height, width)
        query_points = query_points.to(features.dtype)
        scale = query_points.new_tensor([max(frames - 1, 1), height, width])
        normalised = query_points / scale  # (t, y, x) in [0, 1]
        queries = fourier_encode(normalised, self.config.num_fourier_bands)
        if self.config.point_query_features:
            queries = torch.cat([queries, self.query_point_features(features, normalised, height, width)], dim=-1)
        logits = self.track_logits(features, queries)  # (B, N, T, 4)
        start = normalised[..., [2, 1]].unsqueeze(2)  # (x, y) of the query point
        offsets = self.config.point_offset_scale * logits[..., :2]
        positions = (start + offsets) * query_points.new_tensor([width, height])
        visibility_logits, certainty_logits = logits[..., 2], logits[..., 3]
        predicted_occluded = torch.sigmoid(visibility_logits) * torch.sigmoid(certainty_logits) <= 0.5
        loss = None
        if tracks is not None:
            loss = self.point_loss(positions, visibility_logits, certainty_logits, tracks, occluded, height, width)
        return PointTrackingOutput(
            loss=loss,
            tracks=positions,
            occluded=predicted_occluded,
            visibility_logits=visibility_logits,
            certainty_logits=certainty_logits,
            **backbone_outputs,
        )

    def track_logits(self, features: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, T, S, C) features and (B, N, Q) track queries -> (B, N, T, 4) per-frame (dx, dy, visibility,
        certainty) logits: one readout query per track, or one per track and chunk of ``point_frames_per_query``
        frames attending only to that chunk."""
        batch, frames, tokens, channels = features.shape
        points = queries.shape[1]
        chunk = self.frames_per_query
        if chunk == frames:
            return self.readout(features, queries).reshape(batch, points, frames, 4)
        chunks = frames // chunk
        centres = (torch.arange(chunks, device=features.device, dtype=queries.dtype) * chunk + (chunk - 1) / 2)
        chunk_time = fourier_encode((centres / max(frames - 1, 1))[:, None], self.config.num_fourier_bands)
        chunk_queries = torch.cat(
            [
                queries[:, None].expand(batch, chunks, points, queries.shape[-1]),
                chunk_time[None, :, None].expand(batch, chunks, points, chunk_time.shape[-1]),
            ],
            dim=-1,
        )
        logits = self.readout(
            features.reshape(batch * chunks, chunk, tokens, channels),
            chunk_queries.reshape(batch * chunks, points, -1),
        )
        return logits.reshape(batch, chunks, points, chunk, 4).permute(0, 2, 1, 3, 4).reshape(batch, points, frames, 4)

    @staticmethod
    def query_point_features(features: torch.Tensor, normalised: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, N, C) features at each query point: the query frame's token grid sampled bilinearly at (y, x),
        layer-normalised (no parameters). Gives the query the appearance of the point to track, so attention can
        match it against the tokens of the other frames instead of localising a coordinate only."""
        batch, frames, tokens, channels = features.shape
        grid_h = max(1, round(math.sqrt(tokens * height / width)))
        grid_w = tokens // grid_h
        if grid_h * grid_w != tokens:
            raise ValueError(
                f"point_query_features needs a token grid matching the {height}x{width} frame; {tokens} tokens per "
                "frame do not factor as its aspect ratio"
            )
        frame_index = (normalised[..., 0] * (frames - 1)).round().long().clamp(0, frames - 1)  # (B, N)
        maps = features.permute(0, 1, 3, 2).reshape(batch, frames, channels, grid_h, grid_w)
        per_query = maps[torch.arange(batch, device=features.device)[:, None], frame_index]  # (B, N, C, h, w)
        points = normalised.shape[1]
        # grid_sample coordinates: -1 / +1 are the outer edges of the frame (align_corners=False).
        grid = (normalised[..., [2, 1]] * 2 - 1).reshape(batch * points, 1, 1, 2)
        sampled = nn.functional.grid_sample(
            per_query.reshape(batch * points, channels, grid_h, grid_w), grid, mode="bilinear",
            padding_mode="border", align_corners=False,
        ).reshape(batch, points, channels)
        return nn.functional.layer_norm(sampled, (channels,))

    def point_loss(self, positions, visibility_logits, certainty_logits, tracks, occluded, height, width):
        """:func:`~.losses.point_tracking_loss` with the config's delta, threshold and weights."""
        config = self.config
        return point_tracking_loss(
            positions, visibility_logits, certainty_logits, tracks, occluded, height, width,
            huber_delta=config.point_huber_delta, certainty_threshold=config.point_certainty_threshold,
            position_weight=config.point_position_loss_weight, visibility_weight=config.point_visibility_loss_weight,
            certainty_weight=config.point_certainty_loss_weight,
        )


# --------------------------------------------------------------------------------------------------------------------
# Box tracking


class ReadoutForBoxTracking(ReadoutPreTrainedModel):
    """Box tracking: one query per box from its Fourier-encoded first-frame box; predicts the box in every frame as an
    offset from the query box (min/max-sorted so every box satisfies ymin <= ymax, xmin <= xmax)."""

    task = "boxes"

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        self.readout = self.build_readout(4 * self.num_frames, query_dim=fourier_dim(4, config.num_fourier_bands))
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        query_boxes: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        box_visible: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BoxTrackingOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) video, as the backbone expects it.
            query_boxes: (B, O, 4) first-frame boxes (ymin, xmin, ymax, xmax) in [0, 1]; defaults to ``boxes[:, :, 0]``.
            boxes: optional (B, O, T, 4) ground-truth boxes in [0, 1] (the loss target).
            box_visible: optional (B, O, T) visibility of the ground-truth boxes (loss mask; default all visible).
            features: (B, T, N, C) precomputed backbone features, instead of ``pixel_values``.
            output_attentions / output_hidden_states: return the backbone's attentions / hidden states (as the
                backbone lays them out; None with precomputed ``features``).
        """
        features, backbone_outputs = self.backbone_features(
            pixel_values, features, output_hidden_states, output_attentions
        )
        batch, frames = features.shape[0], self.num_frames
        if boxes is not None:
            if boxes.ndim != 4 or boxes.shape[0] != batch or boxes.shape[2] != frames:
                raise ValueError(
                    f"`boxes` must have shape ({batch}, objects, {frames}, 4) as (ymin, xmin, ymax, xmax), "
                    f"got {tuple(boxes.shape)}"
                )
            check_boxes("boxes", boxes)
            if query_boxes is None:
                query_boxes = boxes[:, :, 0]
        if query_boxes is None:
            raise ValueError("the boxes readout needs `query_boxes` (batch, objects, 4) or ground-truth `boxes`")
        if query_boxes.ndim != 3 or query_boxes.shape[0] != batch:
            raise ValueError(f"`query_boxes` must have shape ({batch}, objects, 4), got {tuple(query_boxes.shape)}")
        check_boxes("query_boxes", query_boxes)
        query_boxes = query_boxes.to(features.dtype)
        logits = self.readout(features, fourier_encode(query_boxes, self.config.num_fourier_bands))
        raw = query_boxes.unsqueeze(2) + logits.reshape(batch, -1, frames, 4)
        predicted = torch.stack(
            [
                torch.minimum(raw[..., 0], raw[..., 2]),
                torch.minimum(raw[..., 1], raw[..., 3]),
                torch.maximum(raw[..., 0], raw[..., 2]),
                torch.maximum(raw[..., 1], raw[..., 3]),
            ],
            dim=-1,
        )
        loss = None
        if boxes is not None:
            if box_visible is None:
                weights = torch.ones(boxes.shape[:3], dtype=predicted.dtype, device=predicted.device)
            else:
                _check_shape("box_visible", box_visible, boxes.shape[:3], "(batch, objects, frames)")
                weights = box_visible.to(predicted.dtype)
            loss = box_tracking_loss(predicted, boxes, weights)
        elif box_visible is not None:
            raise ValueError("`box_visible` was given without `boxes`")
        return BoxTrackingOutput(loss=loss, boxes=predicted, **backbone_outputs)


# --------------------------------------------------------------------------------------------------------------------
# Camera pose


class ReadoutForCameraPose(ReadoutPreTrainedModel):
    """Relative camera pose between the first and the last frame (the 4DS paper's RE10k readout): the features of
    those two frames are concatenated along channels, (B, 1, N, 2C), and one learned query reads them; the 12 outputs
    are a 3x3 matrix, projected onto SO(3) (SVD / Procrustes, det +1), and a translation. The pose ``[R | t]`` maps
    points from the last camera's coordinates to the first one's: ``X_first = R @ X_last + t``."""

    task = "pose"

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        self.readout = self.build_readout(12, num_queries=1, num_frames=1, input_dim=2 * self.feature_dim)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        camera_rotation: torch.Tensor | None = None,
        camera_translation: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> CameraPoseReadoutOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) video, as the backbone expects it.
            camera_rotation: optional (B, 3, 3) ground-truth rotation of the last camera in the first camera's frame
                (the loss target).
            camera_translation: optional (B, 3) ground-truth position of the last camera in the first camera's
                frame (the loss target, with ``camera_rotation``; without it the loss scores the rotation only).
            features: (B, T, N, C) precomputed backbone features, instead of ``pixel_values``.
            output_attentions / output_hidden_states: return the backbone's attentions / hidden states (as the
                backbone lays them out; None with precomputed ``features``).
        """
        features, backbone_outputs = self.backbone_features(
            pixel_values, features, output_hidden_states, output_attentions
        )
        ends = torch.cat([features[:, 0], features[:, -1]], dim=-1)[:, None]  # (B, 1, N, 2C)
        output = self.readout(ends)[:, 0]
        # Identity-centred regression: the untrained head predicts "no rotation".
        raw = output[:, :9].reshape(-1, 3, 3) + torch.eye(3, dtype=features.dtype, device=features.device)
        rotation = project_to_rotation(raw)
        translation = output[:, 9:]
        loss = None
        if camera_rotation is not None:
            _check_shape("camera_rotation", camera_rotation, rotation.shape, "(batch, 3, 3)")
            target = camera_rotation.to(rotation.dtype)
            identity = torch.eye(3, dtype=target.dtype, device=target.device)
            orthogonality = (target @ target.transpose(-1, -2) - identity).abs().amax()
            if orthogonality > 1e-3 or (torch.det(target) < 0).any():
                raise ValueError(
                    "`camera_rotation` must hold rotation matrices (R R^T = I, det R = +1); "
                    f"got max |R R^T - I| = {orthogonality:.3g}"
                )
            if camera_translation is not None:
                _check_shape("camera_translation", camera_translation, translation.shape, "(batch, 3)")
            loss = camera_pose_loss(rotation, translation, target, camera_translation)
        elif camera_translation is not None:
            raise ValueError("`camera_translation` was given without `camera_rotation`")
        return CameraPoseReadoutOutput(
            loss=loss, rotation=rotation, translation=translation, raw_rotation=raw, **backbone_outputs
        )


# --------------------------------------------------------------------------------------------------------------------
# Classification


class ReadoutForVideoClassification(ReadoutPreTrainedModel):
    """Video classification: one learned query, cross-entropy, logits per clip. In evaluation mode with
    ``num_test_clips = c > 1`` the batch holds c consecutive clips per video (labels may be given per video) and the
    metric averages their softmaxes (:func:`rep4d.training.metrics.average_clips`, the one implementation)."""

    task = "classification"

    def __init__(self, config: ReadoutConfig):
        super().__init__(config)
        self.readout = self.build_readout(config.num_labels, num_queries=1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> VideoClassificationReadoutOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) video, as the backbone expects it.
            labels: optional (B,) class ids in [0, num_labels) (per clip; or per video in multi-clip evaluation).
            features: (B, T, N, C) precomputed backbone features, instead of ``pixel_values``.
            output_attentions / output_hidden_states: return the backbone's attentions / hidden states (as the
                backbone lays them out; None with precomputed ``features``).
        """
        features, backbone_outputs = self.backbone_features(
            pixel_values, features, output_hidden_states, output_attentions
        )
        logits = self.readout(features)[:, 0]
        clips = self.config.num_test_clips
        multi_clip = not self.training and clips > 1
        if multi_clip and logits.shape[0] % clips:
            raise ValueError(f"multi-clip evaluation needs a batch of videos x {clips} clips, got {logits.shape[0]}")
        loss = None
        if labels is not None:
            labels = labels.long().reshape(-1)
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.config.num_labels):
                raise ValueError(
                    f"`labels` must be class ids in [0, {self.config.num_labels}), got values in "
                    f"[{labels.min().item()}, {labels.max().item()}]"
                )
            if multi_clip and labels.shape[0] * clips == logits.shape[0]:
                labels = labels.repeat_interleave(clips)  # one label per video
            if labels.shape[0] != logits.shape[0]:
                raise ValueError(f"`labels` must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
            loss = classification_loss(logits, labels)
        return VideoClassificationReadoutOutput(loss=loss, logits=logits, **backbone_outputs)


# The head of each task of the registry (configuration/readout_tasks.py), by its ``head_class`` name.
READOUT_CLASSES = {name: globals()[task.head_class] for name, task in READOUT_TASK_SPECS.items()}


def readout_class_for_task(task: str) -> type[ReadoutPreTrainedModel]:
    if task not in READOUT_CLASSES:
        raise ValueError(f"unknown readout task {task!r}; expected one of {', '.join(READOUT_CLASSES)}")
    return READOUT_CLASSES[task]


def load_readout(pretrained_model_name_or_path, **kwargs) -> ReadoutPreTrainedModel:
    """Load a saved readout of any task (the head class comes from ``config.task``)."""
    config = ReadoutConfig.from_pretrained(pretrained_model_name_or_path)
    return readout_class_for_task(config.task).from_pretrained(pretrained_model_name_or_path, **kwargs)


__all__ = [
    "ReadoutPreTrainedModel",
    "ReadoutForDepthEstimation",
    "ReadoutForPointTracking",
    "ReadoutForBoxTracking",
    "ReadoutForCameraPose",
    "ReadoutForVideoClassification",
    "DepthReadoutOutput",
    "PointTrackingReadoutOutput",
    "BoxTrackingReadoutOutput",
    "CameraPoseReadoutOutput",
    "VideoClassificationReadoutOutput",
    "READOUT_CLASSES",
    "readout_class_for_task",
    "load_readout",
    "fourier_encode",
    "project_to_rotation",
]
