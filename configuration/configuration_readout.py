"""Configuration of the 4D attention-readout heads (depth, point and box tracking, camera pose, classification).

One :class:`ReadoutConfig` serves every task (``task`` selects the head class); it is a composite config that holds
the full configuration of the video backbone under ``backbone_config`` (any model type with a registered backbone
adapter: ``fourds``, ``videomae``, ...). A saved readout therefore rebuilds its backbone from ``config.json`` alone
and its ``model.safetensors`` holds backbone and head weights together, so ``from_pretrained`` needs no other
checkpoint. ``backbone_name_or_path`` only records where the backbone weights came from.
"""

from __future__ import annotations

from dataclasses import field

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .config_presets import FamilyCheckedConfig
from .readout_tasks import READOUT_TASK_SPECS, READOUT_TASKS

DEPTH_QUERY_TYPES = ("patch", "coordinate")
DEPTH_LOSS_TYPES = ("l2", "log_l2", "log_l1")


class ReadoutConfig(FamilyCheckedConfig, PreTrainedConfig):
    r"""Configuration of a readout head (:mod:`rep4d.modeling.modeling_readout`) on a video backbone.

    Args:
        task: one of ``depth``, ``points``, ``boxes``, ``pose``, ``classification``.
        backbone_config: the backbone's config (a config or its dict with ``model_type``); defaults to a 4DS-B.
        backbone_name_or_path: provenance of the backbone weights (informational; the weights live in the readout).
        freeze_backbone: frozen mode (the paper's default): the backbone stays in eval mode, gets no gradients and
            can be replaced by cached features. False trains end to end.
        backbone_learning_rate_scale: backbone learning rate / readout learning rate in end-to-end mode
            (the 4DS paper uses 0.003), used by :func:`rep4d.training.optimization.parameter_groups`.
        backbone_feature_layer: index into the backbone's ``hidden_states`` (embeddings first) of the features to read;
            None uses the adapter's default (4DS: ``readout_depth``; VideoMAE: ``last_hidden_state``).
        feature_position_embedding: add a learned per-token embedding (N, C) to the backbone features before the
            readout (the readout itself only has a temporal embedding and content-based attention). Frozen features
            whose position information is weak (a random or briefly trained backbone) cannot be localised by the
            queries without it; pretrained large backbones carry position in their features (the papers' setting,
            hence the default False). Needs an adapter that knows its token count (4DS, VideoMAE).
        num_frames: frames T of the features fed to the readout (the backbone's input frames if None).
        image_size: ``[H, W]`` of the input video (the backbone's if None); output size of depth.
        readout_num_params / readout_num_heads / readout_mlp_ratio: width, heads and MLP ratio of the
            :class:`AttentionReadout`.
        depth_query_type: ``patch`` (one learned query per decoding patch, the released 4DS depth head) or
            ``coordinate`` (queries computed from the Fourier-encoded (t, y, x) centre of each patch).
        decoding_patch_size: ``[pt, ph, pw]`` pixels decoded by one depth query.
        num_fourier_bands: frequencies of the Fourier encoding of query coordinates (points, boxes, depth coords).
        point_huber_delta / point_position_loss_weight / point_visibility_loss_weight /
            point_certainty_loss_weight / point_certainty_threshold: point-tracking loss (TAPIR style): Huber loss on
            positions in pixels of a 256x256 raster (delta 4) on visible points, scaled by the position weight, plus
            BCE on visibility and BCE on certainty, whose target is "within ``point_certainty_threshold`` px".
        point_query_features: build each point query from its Fourier-encoded (t, y, x) AND the backbone feature
            at the query point (bilinear in the query frame's token grid), so the readout can look for the point's
            appearance in the other frames; without it the query only knows where the point starts.
        point_frames_per_query: 0 (default) for one query per track that attends to every frame and predicts the whole
            track; k > 0 for one query per track and k-frame chunk (the 4DS paper uses k = 2) that attends only to
            that chunk's features and predicts its k frames. The chunk's (centre) time is Fourier-encoded into the
            query. With one query for the whole clip a single attention softmax must serve every frame, which
            blurs per-frame positions; per-chunk queries let each attention pick the point in its own frames.
        point_offset_scale: frame sizes per unit of the head's offset output (1: an output of 1 moves the point by
            the frame width/height). Smaller values make one optimiser step move the predicted points less: with
            Adam every weight moves by ~lr per step, so at 1 an lr of 1e-3 jitters the offsets by pixels, more than
            the motion of slow points.
        depth_loss_type: ``l2`` (default, the papers' loss: mean squared error over valid pixels) or ``log_l2``
            (mean squared error of log-depth over valid pixels, a scale-aware loss: an error counts relative to the
            true depth, as in the AbsRel metric, so near surfaces are not drowned by a far background) or ``log_l1``
            (mean absolute error of log-depth: also scale-aware, and median- rather than mean-seeking, so a pixel
            that is background in most training clips is predicted at the background depth instead of being pulled
            towards the occasional near object; the right fit for AbsRel on short runs).
        depth_mean / depth_std: the depth head predicts ``depth_mean + depth_std * output``, so an untrained head
            starts at the mean depth instead of 0 (set them to the training data's depth statistics; the fine-tuning
            code does).
        num_test_clips: classification clips per video averaged at evaluation time (softmax then mean over
            consecutive groups of the batch).

    The task list and the per-task facts (head class, targets, metric) come from
    :mod:`~.readout_tasks`; metric settings (e.g. the pose metric's cube size) live there, not here (a
    ``cube_size`` key in an older ``config.json`` is ignored).
    """

    model_type = "rep4d_readout"
    family = "readout"
    family_hint = ", or build a readout around it with ReadoutFor<Task>.from_backbone(model)"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="fourds")}

    task: str = "classification"
    backbone_config: dict | PreTrainedConfig | None = None
    backbone_name_or_path: str | None = None
    freeze_backbone: bool = True
    backbone_learning_rate_scale: float = 0.003
    backbone_feature_layer: int | None = None
    feature_position_embedding: bool = False
    num_frames: int | None = None
    image_size: list[int] | tuple[int, int] | None = None
    readout_num_params: int = 1024
    readout_num_heads: int = 16
    readout_mlp_ratio: int = 4
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    depth_query_type: str = "patch"
    decoding_patch_size: list[int] | tuple[int, int, int] = field(default_factory=lambda: [2, 8, 8])
    num_fourier_bands: int = 16
    point_huber_delta: float = 4.0
    point_position_loss_weight: float = 0.05
    point_visibility_loss_weight: float = 1.0
    point_certainty_loss_weight: float = 1.0
    point_certainty_threshold: float = 6.0
    point_query_features: bool = False
    point_frames_per_query: int = 0
    point_offset_scale: float = 1.0
    depth_loss_type: str = "l2"
    depth_mean: float = 0.0
    depth_std: float = 1.0
    num_test_clips: int = 1

    def __post_init__(self, **kwargs):
        if self.task not in READOUT_TASKS:
            raise ValueError(f"task must be one of {READOUT_TASKS}, got {self.task!r}")
        if self.depth_query_type not in DEPTH_QUERY_TYPES:
            raise ValueError(f"depth_query_type must be one of {DEPTH_QUERY_TYPES}, got {self.depth_query_type!r}")
        if self.depth_loss_type not in DEPTH_LOSS_TYPES:
            raise ValueError(f"depth_loss_type must be one of {DEPTH_LOSS_TYPES}, got {self.depth_loss_type!r}")
        self.decoding_patch_size = [int(v) for v in self.decoding_patch_size]
        if len(self.decoding_patch_size) != 3:
            raise ValueError(f"decoding_patch_size must be [pt, ph, pw], got {self.decoding_patch_size}")
        if self.image_size is not None:
            self.image_size = [int(v) for v in self.image_size]
            if len(self.image_size) != 2:
                raise ValueError(f"image_size must be [H, W], got {self.image_size}")
        if self.readout_num_params % self.readout_num_heads:
            raise ValueError(
                f"readout_num_params ({self.readout_num_params}) must be divisible by readout_num_heads "
                f"({self.readout_num_heads})"
            )
        if not isinstance(self.point_frames_per_query, int) or self.point_frames_per_query < 0:
            raise ValueError(f"point_frames_per_query must be an integer >= 0, got {self.point_frames_per_query!r}")
        if not self.point_offset_scale > 0:
            raise ValueError(f"point_offset_scale must be > 0, got {self.point_offset_scale}")
        if not self.depth_std > 0:
            raise ValueError(f"depth_std must be > 0, got {self.depth_std}")
        if self.num_test_clips < 1:
            raise ValueError(f"num_test_clips must be >= 1, got {self.num_test_clips}")
        if not 0.0 <= self.backbone_learning_rate_scale:
            raise ValueError(f"backbone_learning_rate_scale must be >= 0, got {self.backbone_learning_rate_scale}")
        super().__post_init__(**kwargs)
        if not self.architectures:
            # AutoModel maps this one config class to the five heads: ``architectures`` picks the head of the task.
            self.architectures = [READOUT_TASK_SPECS[self.task].head_class]

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # ``cube_size`` (a metric setting, now in the task registry) was a field of older readout configs.
        config_dict = {key: value for key, value in config_dict.items() if key != "cube_size"}
        return super().from_dict(config_dict, **kwargs)


__all__ = ["ReadoutConfig", "DEPTH_QUERY_TYPES", "DEPTH_LOSS_TYPES"]
