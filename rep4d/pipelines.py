"""Custom ``transformers`` pipelines for rep4d video models: depth video, point tracking and grid features.

Each pipeline takes a video as a file path, a ``(T, H, W, C)`` / ``(T, C, H, W)`` array or tensor, or a list of
frames (arrays or PIL images); the model's video processor samples, resizes and crops it. They are registered with
``PIPELINE_REGISTRY`` when this module is imported (``import rep4d`` does) and are exported with the remote code of a
published folder (``rep4d publish``), so ``pipeline(task, model=repo_id, trust_remote_code=True)`` works where rep4d is
not installed. This file imports only numpy, torch and transformers: it is copied flat into Hub repos.

================================  ===================================  ===============================================
task                              models                               output
================================  ===================================  ===============================================
``video-depth-estimation``        FourDSForDepthEstimation,            ``predicted_depth`` (T, H, W) tensor, ``depth``
                                  ReadoutForDepthEstimation,           (T, H, W) uint8 video normalised per clip,
                                  MooGForDepthEstimation               ``frames``: per-frame PIL images
``point-tracking``                ReadoutForPointTracking,             ``tracks`` (N, T, 2) (x, y) pixels of the
                                  MooGForPointTracking                 processed frames, ``visible`` (N, T) bool
``video-feature-extraction``      FourDSModel, RVMModel, MooGModel     ``features``: (T, h, w, C) grid (4DS, RVM) or
                                                                       (T, K, C) latent tokens (MooG)
================================  ===================================  ===============================================
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoModelForDepthEstimation, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

DEPTH_TASK = "video-depth-estimation"
POINT_TRACKING_TASK = "point-tracking"
FEATURE_TASK = "video-feature-extraction"


def as_video_input(video):
    """A path, an array/tensor video or a list of frames -> what the video processor accepts (path or one array)."""
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        return str(video) if not isinstance(video, bytes) else video
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("the list of frames is empty; expected at least one frame")
        if all(hasattr(frame, "convert") for frame in video):  # PIL images
            video = [np.asarray(frame.convert("RGB")) for frame in video]
        frames = [frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame) for frame in video]
        shapes = {frame.shape for frame in frames}
        if len(shapes) != 1 or frames[0].ndim != 3:
            raise ValueError(f"every frame must be an (H, W, C) or (C, H, W) array of one shape, got shapes {shapes}")
        return np.stack(frames)
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim == 5 and video.shape[0] == 1:
            video = video[0]
        if video.ndim != 4:
            raise ValueError(f"a video array must be (T, H, W, C) or (T, C, H, W), got shape {video.shape}")
        return video
    raise ValueError(f"expected a video file path, an array/tensor or a list of frames, got {type(video).__name__}")


def _is_frame(item) -> bool:
    return hasattr(item, "convert") or (hasattr(item, "ndim") and item.ndim == 3)


def _saved_architecture(model):
    """The class the folder was saved from (``config.architectures``) when ``model`` was loaded as another one.

    With rep4d installed, ``AutoModel`` maps a MooG config to the bare backbone even for a point-tracking repo; the
    tracker class lives in the same module, so it is reloaded from the same folder.
    """
    import sys

    names = getattr(model.config, "architectures", None) or []
    if not names or type(model).__name__ == names[0] or not getattr(model, "name_or_path", None):
        return model
    saved_class = getattr(sys.modules[type(model).__module__], names[0], None)
    if saved_class is None:
        return model
    return saved_class.from_pretrained(model.name_or_path, dtype=model.dtype).eval()


class _VideoPipeline(Pipeline):
    """Shared plumbing: video processor only (no tokenizer/image processor), one video per call."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = True

    def __call__(self, video, **kwargs):
        # transformers runs a list input as a batch of inputs; a list of frames is one video.
        if isinstance(video, (list, tuple)) and video and all(_is_frame(frame) for frame in video):
            video = as_video_input(video)
        return super().__call__(video, **kwargs)

    def _processed(self, video, num_frames=None):
        if self.video_processor is None:
            raise ValueError(f"{type(self).__name__} needs a video processor (pass video_processor=...)")
        kwargs = {"num_frames": num_frames} if num_frames is not None else {}
        inputs = self.video_processor(as_video_input(video), return_tensors="pt", **kwargs)
        return {"pixel_values": inputs["pixel_values"].to(self.dtype if self.dtype is not None else torch.float32)}

    def _forward(self, model_inputs):
        return self.model(**model_inputs)


class VideoDepthEstimationPipeline(_VideoPipeline):
    """Video in, depth video out: ``{"predicted_depth": (T, H, W) tensor, "depth": (T, H, W) uint8, "frames": [PIL]}``.

    ``depth`` is normalised by the clip's min/max (near = bright); ``predicted_depth`` keeps the model's values.
    """

    def _sanitize_parameters(self, num_frames=None, **kwargs):
        preprocess = {"num_frames": num_frames} if num_frames is not None else {}
        return preprocess, {}, {}

    def preprocess(self, video, num_frames=None):
        return self._processed(video, num_frames)

    def postprocess(self, model_outputs):
        depth = model_outputs["predicted_depth"][0].float().cpu()
        low, high = depth.min(), depth.max()
        scaled = (1.0 - (depth - low) / (high - low).clamp_min(1e-12)) * 255.0
        depth_video = scaled.round().clamp(0, 255).to(torch.uint8).numpy()
        from PIL import Image

        return {
            "predicted_depth": depth,
            "depth": depth_video,
            "frames": [Image.fromarray(frame) for frame in depth_video],
        }


class PointTrackingPipeline(_VideoPipeline):
    """Query points in, tracks and visibility out.

    ``query_points``: (N, 3) as (t, y, x) in pixels of the *processed* frames (the processor's crop size). MooG's
    released head tracks points given on frame 0 (t must be 0). Returns ``{"tracks": (N, T, 2) (x, y) pixels,
    "visible": (N, T) bool, "query_points": (N, 3)}``.
    """

    def __init__(self, model, *args, **kwargs):
        super().__init__(_saved_architecture(model), *args, **kwargs)

    def _sanitize_parameters(self, query_points=None, num_frames=None, **kwargs):
        preprocess = {}
        if query_points is not None:
            preprocess["query_points"] = query_points
        if num_frames is not None:
            preprocess["num_frames"] = num_frames
        return preprocess, {}, {}

    def __call__(self, video, query_points=None, **kwargs):
        if query_points is None:
            raise ValueError("point tracking needs query_points: an (N, 3) array of (t, y, x) pixel coordinates")
        return super().__call__(video, query_points=query_points, **kwargs)

    def preprocess(self, video, query_points=None, num_frames=None):
        config = self.model.config
        if num_frames is None and getattr(config, "point_readout_type", None) == "attention":
            num_frames = config.readout_num_frames  # MooG's released head reads clips of exactly this length
        inputs = self._processed(video, num_frames)
        queries = torch.as_tensor(np.asarray(query_points, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[-1] != 3:
            raise ValueError(f"query_points must have shape (N, 3) as (t, y, x) pixels, got {tuple(queries.shape)}")
        _, frames, _, height, width = inputs["pixel_values"].shape
        inputs["_size"] = torch.tensor([height, width])
        if type(self.model).__name__.startswith("MooG"):
            # MooG's released head: (x, y) in [0, 1] on frame 0.
            if (queries[:, 0] != 0).any():
                raise ValueError("MooG point tracking takes queries on frame 0 only (t must be 0)")
            inputs["query_points"] = (queries[:, [2, 1]] / torch.tensor([width, height])).unsqueeze(0)
        else:
            inputs["query_points"] = queries.unsqueeze(0)
        inputs["_queries"] = queries
        return inputs

    def _forward(self, model_inputs):
        size, queries = model_inputs.pop("_size"), model_inputs.pop("_queries")
        outputs = self.model(**model_inputs)
        return {"outputs": outputs, "size": size, "queries": queries}

    def postprocess(self, model_outputs):
        outputs, (height, width) = model_outputs["outputs"], model_outputs["size"].tolist()
        if getattr(outputs, "tracks", None) is not None:  # rep4d readout: (B, N, T, 2) pixels
            tracks = outputs["tracks"][0].float()
            visible = ~outputs["occluded"][0].bool()
        else:  # MooG: (B, T, Q, 2) in [0, 1], visible (B, T, Q, 1)
            tracks = outputs["values"][0].float().transpose(0, 1) * torch.tensor([width, height])
            visible = outputs["visible"][0, ..., 0].transpose(0, 1) > 0.5
        return {"tracks": tracks.cpu(), "visible": visible.cpu(), "query_points": model_outputs["queries"]}


class VideoFeatureExtractionPipeline(_VideoPipeline):
    """Video in, features out: ``{"features": (T, h, w, C)}`` on the token grid (4DS readout features, RVM patch
    features without the CLS token) or ``(T, K, C)`` latent tokens for MooG (not tied to a grid)."""

    def _sanitize_parameters(self, num_frames=None, **kwargs):
        return ({"num_frames": num_frames} if num_frames is not None else {}), {}, {}

    def preprocess(self, video, num_frames=None):
        return self._processed(video, num_frames)

    def _forward(self, model_inputs):
        outputs = self.model(**model_inputs)
        return {"outputs": outputs, "size": torch.tensor(model_inputs["pixel_values"].shape[-2:])}

    def postprocess(self, model_outputs):
        outputs, (height, width) = model_outputs["outputs"], model_outputs["size"].tolist()
        config = self.model.config
        if getattr(outputs, "readout_features", None) is not None:  # 4DS: (B, T, h*w, C)
            features = outputs["readout_features"][0]
            patch = config.tubelet_size
            grid = (height // patch[1], width // patch[2])
        elif config.model_type == "rvm":  # (B, T, 1+N, D): CLS first
            features = outputs["last_hidden_state"][0, :, 1:]
            grid = (height // config.patch_size, width // config.patch_size)
        elif getattr(outputs, "features", None) is not None:  # MooG latent tokens (B, T, K, D)
            return {"features": outputs["features"][0].float().cpu()}
        else:
            raise ValueError(f"no feature output recognised in {type(outputs).__name__}")
        frames, tokens, channels = features.shape
        if grid[0] * grid[1] != tokens:
            raise ValueError(f"{tokens} tokens per frame do not form the {grid} grid of a {height}x{width} input")
        return {"features": features.reshape(frames, *grid, channels).float().cpu()}


PIPELINES = {
    DEPTH_TASK: (VideoDepthEstimationPipeline, AutoModelForDepthEstimation),
    POINT_TRACKING_TASK: (PointTrackingPipeline, AutoModel),
    FEATURE_TASK: (VideoFeatureExtractionPipeline, AutoModel),
}


def register_pipelines() -> None:
    """Register the rep4d tasks with transformers' ``PIPELINE_REGISTRY`` (idempotent)."""
    for task, (pipeline_class, auto_class) in PIPELINES.items():
        if PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is pipeline_class:
            continue
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=auto_class, type="video")


def custom_pipelines_entry(tasks) -> dict:
    """The ``custom_pipelines`` field of a config.json serving ``tasks`` with this file exported as ``pipelines.py``
    (what ``Pipeline.save_pretrained`` writes for a registered pipeline)."""
    entry = {}
    for task in tasks:
        pipeline_class, auto_class = PIPELINES[task]
        entry[task] = {"impl": f"pipelines.{pipeline_class.__name__}", "pt": [auto_class.__name__], "type": "video"}
    return entry


register_pipelines()
