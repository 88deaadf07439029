"""Custom ``transformers`` pipelines for rep4d video models: depth video, point and box tracking, grid features.

Each pipeline takes a video as a file path, a ``(T, H, W, C)`` / ``(T, C, H, W)`` array or tensor (uint8 in [0, 255]
or float in [0, 1]), or a list of frames (arrays or PIL images). The model's video processor chooses the frames and
resizes them (its configuration says how: by default the first ``num_frames`` consecutive frames, the whole frame
resized without crop); the pipelines undo that mapping so that **everything they take and return is in the video's
own coordinates**:

* pixel coordinates are continuous, in pixels of the video as given: (0, 0) is the top-left corner of the top-left
  pixel, (W, H) the bottom-right corner of the bottom-right one (the centre of pixel row i, column j is
  (x, y) = (j + 0.5, i + 0.5)). A processor that resizes a H x W frame to h x w scales x by w / W and y by h / H
  (plus the crop offset when it centre-crops); the pipelines apply the inverse;
* times are frame indices of the video (``frame_indices`` in every output lists the video frame of each output
  frame; a query time must be one of them);
* point queries are (t, y, x) (TAP-Vid's order), point tracks (x, y); boxes are (x_min, y_min, x_max, y_max) in
  pixels; depth maps are (T, H, W) at the video's own height and width.

They are registered with ``PIPELINE_REGISTRY`` when this module is imported (``import rep4d`` does) and are exported
with the remote code of a published folder (``rep4d publish``, :func:`rep4d.remote_code.export_remote_code`), so
``pipeline(task, model=repo_id, trust_remote_code=True)`` works where rep4d is not installed. This file imports only
numpy, torch and transformers (and PIL when building pictures): it is copied flat into Hub repos.

================================  ===================================  ===============================================
task                              models                               output
================================  ===================================  ===============================================
``video-depth-estimation``        FourDSForDepthEstimation,            ``predicted_depth`` (T, H, W) tensor, ``depth``
                                  ReadoutForDepthEstimation,           (T, H, W) uint8 picture normalised per clip,
                                  MooGForDepthEstimation               ``frames``: per-frame PIL images
``point-tracking``                ReadoutForPointTracking,             ``tracks`` (Q, T, 2) (x, y), ``visible`` and
                                  MooGForPointTracking                 ``occluded`` (Q, T) bool
``box-tracking``                  ReadoutForBoxTracking,               ``boxes`` (O, T, 4) (x_min, y_min, x_max, y_max)
                                  MooGForBoxTracking
``video-feature-extraction``      FourDSModel, RVMModel, MooGModel     ``features`` (T, h, w, C) on the token grid
                                  (any model with                      (``grid_size`` (h, w)), or (T, K, C) latent
                                  ``get_video_features``)              tokens for MooG (``grid_size`` None)
================================  ===================================  ===============================================

Every output also has ``frame_indices`` (the video frame of each output frame) and ``fps`` (the source frame rate
when the video is a file, else None), so a video written from the output keeps the source frame rate.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoModelForDepthEstimation, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

DEPTH_TASK = "video-depth-estimation"
POINT_TRACKING_TASK = "point-tracking"
BOX_TRACKING_TASK = "box-tracking"
FEATURE_TASK = "video-feature-extraction"


def as_video_input(video):
    """A path, an array/tensor video or a list of frames -> a path or one 4-D numpy array."""
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        return str(video) if not isinstance(video, bytes) else video
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("the list of frames is empty; expected at least one frame")
        if all(hasattr(frame, "convert") for frame in video):  # PIL images
            video = [np.asarray(frame.convert("RGB")) for frame in video]
        frames = [frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame) for frame in video]
        shapes = {frame.shape for frame in frames}
        if len(shapes) != 1 or frames[0].ndim != 3:
            raise ValueError(f"every frame must be an (H, W, C) or (C, H, W) array of one shape, got shapes {shapes}")
        return np.stack(frames)
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu()
        video = (video.float() if video.dtype in (torch.bfloat16, torch.float16) else video).numpy()
    if isinstance(video, np.ndarray):
        if video.ndim == 5 and video.shape[0] == 1:
            video = video[0]
        if video.ndim != 4:
            raise ValueError(f"a video array must be (T, H, W, C) or (T, C, H, W), got shape {video.shape}")
        return video
    raise ValueError(f"expected a video file path, an array/tensor or a list of frames, got {type(video).__name__}")


def channels_last(video: np.ndarray) -> np.ndarray:
    """(T, C, H, W) or (T, H, W, C) -> (T, H, W, C), C in {1, 3, 4} (channels first when dim 1 could be channels)."""
    if video.shape[1] in (1, 3) and video.shape[-1] not in (1, 3, 4):
        return np.moveaxis(video, 1, -1)
    if video.shape[-1] in (1, 3, 4):
        return video
    if video.shape[1] in (1, 3, 4):
        return np.moveaxis(video, 1, -1)
    raise ValueError(f"a video array must have 1, 3 or 4 channels first or last, got shape {video.shape}")


def _is_frame(item) -> bool:
    return hasattr(item, "convert") or (hasattr(item, "ndim") and item.ndim == 3)


def _saved_architecture(model):
    """The class the folder was saved from (``config.architectures``) when ``model`` was loaded as another one.

    ``AutoModel`` maps a MooG config to the bare backbone even for a point-tracking repo; the tracker class lives in
    the same module, so it is reloaded from the same folder.
    """
    import sys

    names = getattr(model.config, "architectures", None) or []
    if not names or type(model).__name__ == names[0] or not getattr(model, "name_or_path", None):
        return model
    saved_class = getattr(sys.modules[type(model).__module__], names[0], None)
    if saved_class is None:
        return model
    return saved_class.from_pretrained(model.name_or_path, dtype=model.dtype).eval()


def randomly_initialised_parameters(model) -> list[str]:
    """Names of the parameters ``from_pretrained`` did not find in the checkpoint (it initialised them at random).

    transformers marks every parameter it loads with ``_is_hf_initialized``; a model built in memory (no checkpoint)
    has no marks at all and gives an empty list.
    """
    named = list(model.named_parameters())
    if not any(getattr(parameter, "_is_hf_initialized", False) for _, parameter in named):
        return []
    return [name for name, parameter in named if not getattr(parameter, "_is_hf_initialized", False)]


class VideoGeometry:
    """How the processor mapped the video to the model input, and back: frame indices, per-axis scale, crop offset.

    ``video_hw`` (H, W) of the video, ``resized_hw`` (h, w) after the processor's resize, ``crop`` (top, left) of its
    centre crop (0, 0 without crop) and ``input_hw`` of the model input.
    """

    def __init__(self, video_hw, resized_hw, crop, input_hw, frame_indices, fps=None):
        self.video_hw = tuple(int(v) for v in video_hw)
        self.resized_hw = tuple(int(v) for v in resized_hw)
        self.crop = tuple(int(v) for v in crop)
        self.input_hw = tuple(int(v) for v in input_hw)
        self.frame_indices = np.asarray(frame_indices, dtype=np.int64)
        self.fps = fps

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): input pixels per video pixel along y and x."""
        return self.resized_hw[0] / self.video_hw[0], self.resized_hw[1] / self.video_hw[1]

    def to_input_xy(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) (x, y) video pixels -> model-input pixels."""
        sy, sx = self.scale
        return torch.stack([xy[..., 0] * sx - self.crop[1], xy[..., 1] * sy - self.crop[0]], dim=-1)

    def to_video_xy(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) (x, y) model-input pixels -> video pixels."""
        sy, sx = self.scale
        return torch.stack([(xy[..., 0] + self.crop[1]) / sx, (xy[..., 1] + self.crop[0]) / sy], dim=-1)

    def clip_times(self, t: torch.Tensor) -> torch.Tensor:
        """Video frame indices -> positions in the clip; every time must be one of ``frame_indices``."""
        indices = torch.as_tensor(self.frame_indices)
        match = t.round().long()[:, None] == indices[None]
        if not bool(match.any(dim=1).all()) or not torch.equal(t, t.round()):
            raise ValueError(
                f"query times must be integer frame indices of the video among the frames the model reads "
                f"{self.frame_indices.tolist()}, got {sorted(set(t.tolist()))}"
            )
        return match.float().argmax(dim=1).to(t.dtype)

    def visible_region(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in video pixels of the part of the video the model sees."""
        corners = self.to_video_xy(torch.tensor([[0.0, 0.0], [float(self.input_hw[1]), float(self.input_hw[0])]]))
        return tuple(float(v) for v in corners.flatten())

    def to_video_image(self, maps: torch.Tensor) -> torch.Tensor:
        """(T, h, w) maps on the model input -> (T, H, W) on the video (bilinear; NaN where a crop cut the frame)."""
        height, width = self.video_hw
        sy, sx = self.scale
        # Centres of the video pixels in input-pixel coordinates, normalised for grid_sample (align_corners=False).
        xs = ((torch.arange(width, dtype=torch.float32) + 0.5) * sx - self.crop[1]) / self.input_hw[1] * 2 - 1
        ys = ((torch.arange(height, dtype=torch.float32) + 0.5) * sy - self.crop[0]) / self.input_hw[0] * 2 - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)
        source = maps.float()[:, None]
        out = torch.nn.functional.grid_sample(
            source, grid.expand(len(maps), -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False
        )[:, 0]
        if self.crop != (0, 0) or self.resized_hw != self.input_hw:
            outside = (grid[..., 0].abs() > 1) | (grid[..., 1].abs() > 1)
            out[:, outside] = float("nan")
        return out


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

    def _processed(self, video, num_frames=None) -> dict:
        """Decode and select frames as the processor is configured to, then process them with sampling off; return
        ``pixel_values`` and the :class:`VideoGeometry` that maps the model input back to the video."""
        processor = self.video_processor
        if processor is None:
            raise ValueError(f"{type(self).__name__} needs a video processor (pass video_processor=...)")
        video = as_video_input(video)
        sample_kwargs = {"num_frames": num_frames} if num_frames is not None else {}
        sampling = getattr(processor, "do_sample_frames", False)
        fps = None
        if isinstance(video, (str, bytes)):

            def choose(metadata, **kwargs):
                if not sampling:
                    return np.arange(metadata.total_num_frames)
                return processor.sample_frames(metadata, **sample_kwargs)

            frames, metadata = processor.fetch_videos(video, sample_indices_fn=choose)
            indices = getattr(metadata, "frames_indices", None)
            frames = np.asarray(frames)
            indices = np.arange(len(frames)) if indices is None else np.asarray(indices)
            fps = getattr(metadata, "fps", None)
        else:
            frames = channels_last(video)
            indices = np.arange(len(frames))
            if sampling:
                from transformers.video_utils import VideoMetadata

                metadata = VideoMetadata(total_num_frames=len(frames), height=frames.shape[1], width=frames.shape[2])
                indices = np.asarray(processor.sample_frames(metadata, **sample_kwargs))
                frames = frames[indices]
        frames = channels_last(frames)
        height, width = frames.shape[1:3]
        inputs = processor(list(frames[None]), do_sample_frames=False, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.dtype if self.dtype is not None else torch.float32)
        input_hw = tuple(pixel_values.shape[-2:])
        if hasattr(processor, "output_geometry"):
            placement = processor.output_geometry(height, width)
            resized, crop = placement["resized"], placement["crop"]
            crop = (crop[0], crop[1]) if crop else (0, 0)
        else:  # a processor without crop information: a whole-frame resize
            resized, crop = input_hw, (0, 0)
        geometry = VideoGeometry((height, width), resized, crop, input_hw, indices, fps)
        return {"pixel_values": pixel_values, "_geometry": geometry}

    def _forward(self, model_inputs):
        geometry = model_inputs.pop("_geometry")
        return {"outputs": self.model(**model_inputs, **self._seeded(self.model.forward)), "geometry": geometry}

    def _seeded(self, method) -> dict:
        """``generator=`` seeded with 0 for models that draw an initial state at random (MooG), so the same video
        always gives the same output (as ``get_video_features`` does)."""
        import inspect

        if "generator" not in inspect.signature(method).parameters:
            return {}
        return {"generator": torch.Generator(device=self.model.device).manual_seed(0)}

    @staticmethod
    def _common(geometry: VideoGeometry) -> dict:
        return {"frame_indices": geometry.frame_indices, "fps": geometry.fps}


class VideoDepthEstimationPipeline(_VideoPipeline):
    """Video in, depth video out, at the video's own size.

    Returns ``{"predicted_depth": (T, H, W) float tensor, "depth": (T, H, W) uint8 (near = bright, normalised by the
    clip's min/max), "frames": [PIL images], "frame_indices", "fps"}``. ``predicted_depth`` keeps the model's values,
    resampled bilinearly from the model input to the video's H x W (NaN outside a processor crop, if it crops).
    A model whose depth head was not in its checkpoint (randomly initialised) is refused.
    """

    def __init__(self, model, *args, **kwargs):
        missing = randomly_initialised_parameters(model)
        if missing:
            raise ValueError(
                f"{type(model).__name__} from {getattr(model, 'name_or_path', '?')!r} has {len(missing)} parameters "
                f"that were not in its checkpoint (e.g. {missing[0]}): its depth head is randomly initialised and "
                "would return noise; load a checkpoint with trained depth-head weights"
            )
        super().__init__(model, *args, **kwargs)

    def _sanitize_parameters(self, num_frames=None, **kwargs):
        preprocess = {"num_frames": num_frames} if num_frames is not None else {}
        return preprocess, {}, {}

    def preprocess(self, video, num_frames=None):
        return self._processed(video, num_frames)

    def postprocess(self, model_outputs):
        geometry = model_outputs["geometry"]
        depth = geometry.to_video_image(model_outputs["outputs"]["predicted_depth"][0].float().cpu())
        finite = depth[torch.isfinite(depth)]
        low, high = (finite.min(), finite.max()) if finite.numel() else (torch.tensor(0.0), torch.tensor(1.0))
        scaled = (1.0 - (torch.nan_to_num(depth, nan=float(high)) - low) / (high - low).clamp_min(1e-12)) * 255.0
        depth_video = scaled.round().clamp(0, 255).to(torch.uint8).numpy()
        from PIL import Image

        return {
            "predicted_depth": depth,
            "depth": depth_video,
            "frames": [Image.fromarray(frame) for frame in depth_video],
            **self._common(geometry),
        }


class _QueryTrackingPipeline(_VideoPipeline):
    """Shared plumbing of the tracking pipelines: a required query array (keyword ``query_name``, or the second
    positional argument) goes to ``preprocess``, which keeps it as ``_queries``; ``postprocess`` finds it again
    under ``model_outputs["queries"]``."""

    query_name: str = ""
    missing_query_message: str = ""

    def __init__(self, model, *args, **kwargs):
        super().__init__(_saved_architecture(model), *args, **kwargs)

    def _sanitize_parameters(self, num_frames=None, **kwargs):
        preprocess = {}
        if kwargs.get(self.query_name) is not None:
            preprocess[self.query_name] = kwargs[self.query_name]
        if num_frames is not None:
            preprocess["num_frames"] = num_frames
        return preprocess, {}, {}

    def __call__(self, video, queries=None, **kwargs):
        if queries is None:
            queries = kwargs.pop(self.query_name, None)
        if queries is None:
            raise ValueError(self.missing_query_message)
        return super().__call__(video, **{self.query_name: queries}, **kwargs)

    def _forward(self, model_inputs):
        queries = model_inputs.pop("_queries")
        result = super()._forward(model_inputs)
        result["queries"] = queries
        return result


class PointTrackingPipeline(_QueryTrackingPipeline):
    """Query points in, tracks out, in the video's coordinates.

    ``query_points``: (Q, 3) as (t, y, x): t a frame index of the video (one of the frames the model reads, see
    ``frame_indices``), (y, x) pixels of the video. MooG's released head tracks points given on the first frame of the
    clip. Returns ``{"tracks": (Q, T, 2) (x, y) video pixels, "visible": (Q, T) bool, "occluded": (Q, T) bool,
    "query_points": (Q, 3) as given, "frame_indices", "fps"}``.
    """

    query_name = "query_points"
    missing_query_message = "point tracking needs query_points: a (Q, 3) array of (t, y, x) video frame and pixels"

    def preprocess(self, video, query_points=None, num_frames=None):
        config = self.model.config
        if num_frames is None and getattr(config, "point_readout_type", None) == "attention":
            num_frames = config.readout_num_frames  # MooG's released head reads clips of exactly this length
        queries = torch.as_tensor(np.asarray(query_points, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[-1] != 3:
            raise ValueError(f"query_points must have shape (Q, 3) as (t, y, x), got {tuple(queries.shape)}")
        inputs = self._processed(video, num_frames)
        geometry = inputs["_geometry"]
        times = geometry.clip_times(queries[:, 0])
        xy = geometry.to_input_xy(queries[:, [2, 1]])
        height, width = geometry.input_hw
        outside = (xy < -1e-4).any(-1) | (xy[:, 0] > width + 1e-4) | (xy[:, 1] > height + 1e-4)
        if outside.any():
            x0, y0, x1, y1 = geometry.visible_region()
            raise ValueError(
                f"query point (t, y, x) = {tuple(queries[outside.nonzero()[0, 0]].tolist())} lies outside the part of "
                f"the video the model sees (x in [{x0:.4g}, {x1:.4g}], y in [{y0:.4g}, {y1:.4g}] video pixels; the "
                "processor crops the frame)"
            )
        # Every point model (readouts, MooG's heads) takes (t, y, x) queries in pixels of its input frames.
        inputs["query_points"] = torch.stack([times, xy[:, 1], xy[:, 0]], dim=-1).unsqueeze(0)
        inputs["_queries"] = queries
        return inputs

    def postprocess(self, model_outputs):
        outputs, geometry = model_outputs["outputs"], model_outputs["geometry"]
        tracks = geometry.to_video_xy(outputs["tracks"][0].float().cpu())
        occluded = outputs["occluded"][0].bool().cpu()
        return {
            "tracks": tracks,
            "visible": ~occluded,
            "occluded": occluded,
            "query_points": model_outputs["queries"],
            **self._common(geometry),
        }


class BoxTrackingPipeline(_QueryTrackingPipeline):
    """First-frame boxes in, box tracks out, in the video's pixels.

    ``query_boxes``: (O, 4) as (x_min, y_min, x_max, y_max) pixels of the video, on the first frame of the clip.
    Returns ``{"boxes": (O, T, 4) (x_min, y_min, x_max, y_max) video pixels, "query_boxes", "frame_indices", "fps"}``.
    """

    query_name = "query_boxes"
    missing_query_message = "box tracking needs query_boxes: an (O, 4) array of (x_min, y_min, x_max, y_max) pixels"

    def preprocess(self, video, query_boxes=None, num_frames=None):
        config = self.model.config
        if num_frames is None and getattr(config, "box_readout_frames_per_query", None):
            num_frames = config.readout_num_frames  # MooG's released head reads clips of exactly this length
        boxes = torch.as_tensor(np.asarray(query_boxes, dtype=np.float32))
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"query_boxes must have shape (O, 4) as (x_min, y_min, x_max, y_max), got {tuple(boxes.shape)}")
        if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError("query_boxes must be (x_min, y_min, x_max, y_max) with x_min <= x_max and y_min <= y_max")
        inputs = self._processed(video, num_frames)
        geometry = inputs["_geometry"]
        height, width = geometry.input_hw
        corners = geometry.to_input_xy(boxes.reshape(-1, 2, 2)) / torch.tensor([width, height])  # (O, 2, 2) (x, y)
        # The models' query layout: (y_min, x_min, y_max, x_max) in [0, 1] of the model input.
        inputs["query_boxes"] = corners.flip(-1).reshape(-1, 4).clamp(0, 1).unsqueeze(0)
        inputs["_queries"] = boxes
        return inputs

    def postprocess(self, model_outputs):
        outputs, geometry = model_outputs["outputs"], model_outputs["geometry"]
        height, width = geometry.input_hw
        boxes = outputs["boxes"][0].float().cpu()  # (O, T, 4) (y_min, x_min, y_max, x_max) in [0, 1]
        corners = boxes.reshape(*boxes.shape[:2], 2, 2).flip(-1) * torch.tensor([width, height])
        return {
            "boxes": geometry.to_video_xy(corners).reshape(*boxes.shape[:2], 4),
            "query_boxes": model_outputs["queries"],
            **self._common(geometry),
        }


class VideoFeatureExtractionPipeline(_VideoPipeline):
    """Video in, features out, from the model's ``get_video_features``: ``{"features": (T, h, w, C)}`` on the token
    grid (``grid_size`` (h, w); 4DS readout features, RVM patch features without the CLS token) or ``(T, K, C)``
    latent tokens (``grid_size`` None: MooG's tokens are not tied to pixels), plus ``frame_indices`` and ``fps``.
    Token (i, j) of the grid covers video pixels y in [i * H / h, (i + 1) * H / h) and x in [j * W / w, ...) when
    the processor resizes without crop."""

    def _sanitize_parameters(self, num_frames=None, **kwargs):
        return ({"num_frames": num_frames} if num_frames is not None else {}), {}, {}

    def preprocess(self, video, num_frames=None):
        return self._processed(video, num_frames)

    def _forward(self, model_inputs):
        geometry = model_inputs.pop("_geometry")
        if not hasattr(self.model, "get_video_features"):
            raise ValueError(f"{type(self.model).__name__} has no get_video_features; expected a 4DS, MooG or RVM model")
        return {"outputs": self.model.get_video_features(**model_inputs), "geometry": geometry}

    def postprocess(self, model_outputs):
        outputs, geometry = model_outputs["outputs"], model_outputs["geometry"]
        features, grid = outputs["features"][0].float().cpu(), outputs.get("grid_size")
        if grid is not None:
            features = features.reshape(features.shape[0], *grid, features.shape[-1])
        return {"features": features, "grid_size": None if grid is None else tuple(grid), **self._common(geometry)}


PIPELINES = {
    DEPTH_TASK: (VideoDepthEstimationPipeline, AutoModelForDepthEstimation),
    POINT_TRACKING_TASK: (PointTrackingPipeline, AutoModel),
    BOX_TRACKING_TASK: (BoxTrackingPipeline, AutoModel),
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
        if task not in PIPELINES:
            raise ValueError(f"unknown rep4d pipeline task {task!r}; expected one of {', '.join(PIPELINES)}")
        pipeline_class, auto_class = PIPELINES[task]
        entry[task] = {"impl": f"pipelines.{pipeline_class.__name__}", "pt": [auto_class.__name__], "type": "video"}
    return entry


register_pipelines()
