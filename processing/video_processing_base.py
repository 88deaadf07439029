"""Video processor shared by the rep4d models: PyAV decoding, frame selection, resize geometry, float output in [0, 1].

Every choice that changes what reaches the model is an explicit, saved option (see docs/PREPROCESSING.md):

* **frame selection** (``frame_sampling``): ``"consecutive"`` (``num_frames`` frames from ``start_frame`` at
  ``frame_stride``; ``num_frames=None`` keeps every frame from ``start_frame`` on), ``"uniform"`` (``num_frames``
  spread over the whole video) or ``"center"`` (``num_frames`` consecutive frames at ``frame_stride``, centred);
* **geometry** (``resize_mode``): ``"resize"`` (the whole frame to ``size`` = (height, width), no crop: what the
  official notebooks do with ``mediapy.resize_video``), ``"shorter_side_crop"`` (shorter side to
  ``size["shortest_edge"]``, then a centre crop to ``crop_size``: the 4DS paper's evaluation geometry) or
  ``"shorter_side"`` (shorter side only, aspect ratio kept);
* **filter**: each uint8 RGB frame is resized with ``PIL.Image.resize((W, H), resample)`` (``LANCZOS`` by default,
  exactly ``mediapy.resize_video``), then converted to float32 as ``uint8 / 255`` (float32 division, bit-identical
  to the notebooks' ``video.astype(np.float32) / 255.0``). Float inputs in [0, 1] are first quantised to uint8
  (``round(x * 255)``), so a float video ``u8 / 255`` gives exactly the result of its uint8 frames.

Inputs may be file paths (mp4, webm, anything FFmpeg reads; decoded to RGB24 with PyAV, which needs no system FFmpeg),
numpy arrays or torch tensors of shape (T, H, W, C) or (T, C, H, W) (uint8 in [0, 255] or float in [0, 1]), lists of
PIL images, or lists/batches of these. The output ``pixel_values`` has shape (B, T, C, H, W).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image
from transformers import BaseVideoProcessor
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import get_size_dict
from transformers.image_utils import ChannelDimension, PILImageResampling, infer_channel_dimension_format
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_utils import VideoMetadata, default_sample_indices_fn

FRAME_SAMPLINGS = ("consecutive", "uniform", "center")
RESIZE_MODES = ("resize", "shorter_side_crop", "shorter_side")

_UNSET = object()


class Rep4dVideosKwargs(VideosKwargs, total=False):
    r"""Keyword arguments shared by the rep4d video processors, on top of transformers' ``VideosKwargs``.

    frame_sampling (`str`, *optional*):
        How frames are chosen: ``"consecutive"``, ``"uniform"`` or ``"center"``.
    start_frame (`int`, *optional*):
        First frame of ``"consecutive"`` sampling.
    frame_stride (`int`, *optional*):
        Step between the frames of ``"consecutive"`` and ``"center"`` sampling.
    resize_mode (`str`, *optional*):
        ``"resize"`` (whole frame to ``size`` (height, width)), ``"shorter_side_crop"`` or ``"shorter_side"``.
    """

    frame_sampling: str | None
    start_frame: int | None
    frame_stride: int | None
    resize_mode: str | None


def read_video_pyav(path, sample_indices_fn=None) -> tuple[np.ndarray, VideoMetadata]:
    """Decode the frames chosen by ``sample_indices_fn`` as uint8 (T, H, W, 3) RGB24 (as ``mediapy.read_video``).

    ``path`` is a file path or a binary file object (e.g. ``io.BytesIO`` of a ``Video(decode=False)`` column).
    """
    import os

    import av

    if not isinstance(path, (str, os.PathLike)) and not hasattr(path, "read"):
        shape = f" of shape {tuple(path.shape)}" if hasattr(path, "shape") else ""
        raise ValueError(
            f"expected a video file path, a (frames, height, width, channels) array or a list of frames; got "
            f"{type(path).__name__}{shape}"
        )
    if not hasattr(path, "read") and not os.path.isfile(str(path)):
        raise FileNotFoundError(f"video file not found: {path}")
    with av.open(path if hasattr(path, "read") else str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        # The header frame count is 0 for webm and can be wrong for variable frame rates: count packets then.
        total = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        metadata = VideoMetadata(
            total_num_frames=total,
            fps=fps,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=total / fps if fps else None,
            video_backend="pyav",
        )
        indices = np.asarray(sample_indices_fn(metadata=metadata) if sample_indices_fn else np.arange(total))
        if indices.size == 0:
            raise ValueError(f"no frames selected from {path} ({total} frames)")
        container.seek(0)
        wanted, frames = set(indices.tolist()), {}
        last = int(indices.max())
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                frames[position] = frame.to_ndarray(format="rgb24")
            if position >= last:
                break
    missing = sorted(wanted - set(frames))
    if missing:
        raise ValueError(f"{path}: could only decode {len(frames)} of the requested frames (missing {missing[:5]})")
    metadata.frames_indices = indices
    return np.stack([frames[i] for i in indices.tolist()]), metadata


def check_frame_options(frame_sampling, start_frame, frame_stride, num_frames) -> None:
    """One-line ``ValueError`` for a frame-selection option outside its range."""
    if frame_sampling not in FRAME_SAMPLINGS:
        raise ValueError(f"frame_sampling must be one of {', '.join(map(repr, FRAME_SAMPLINGS))}, got {frame_sampling!r}")
    if not isinstance(start_frame, (int, np.integer)) or isinstance(start_frame, bool) or start_frame < 0:
        raise ValueError(f"start_frame must be an integer >= 0, got {start_frame!r}")
    if not isinstance(frame_stride, (int, np.integer)) or isinstance(frame_stride, bool) or frame_stride < 1:
        raise ValueError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")
    if num_frames is not None and (
        not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1
    ):
        raise ValueError(f"num_frames must be an integer >= 1 or None (every frame), got {num_frames!r}")


def frame_indices(
    total: int, frame_sampling: str, num_frames: int | None, start_frame: int = 0, frame_stride: int = 1
) -> np.ndarray:
    """Indices of the frames a processor keeps from a video of ``total`` frames (see the module docstring)."""
    check_frame_options(frame_sampling, start_frame, frame_stride, num_frames)
    if total < 1:
        raise ValueError("the video has no frames")
    if frame_sampling == "uniform":
        if num_frames is None:
            return np.arange(total)
        if total < num_frames:
            raise ValueError(f"the video has {total} frames, fewer than num_frames={num_frames}")
        return np.arange(num_frames, dtype=int) * total // num_frames
    if frame_sampling == "center":
        count = num_frames if num_frames is not None else (total - 1) // frame_stride + 1
        span = (count - 1) * frame_stride + 1
        if total < span:
            raise ValueError(
                f"the video has {total} frames; {count} frames at stride {frame_stride} need at least {span}"
            )
        start = (total - span) // 2
        return np.arange(start, start + span, frame_stride)
    if start_frame >= total:
        raise ValueError(f"start_frame={start_frame} is past the end of the video ({total} frames)")
    count = num_frames if num_frames is not None else (total - start_frame - 1) // frame_stride + 1
    end = start_frame + (count - 1) * frame_stride + 1
    if total < end:
        raise ValueError(
            f"the video has {total} frames; {count} frames from frame {start_frame} at stride {frame_stride} "
            f"need at least {end}"
        )
    return np.arange(start_frame, end, frame_stride)


def strided_indices(total: int, num_frames: int, stride: int) -> np.ndarray:
    """``num_frames`` consecutive indices at ``stride``, centred in a video of ``total`` frames."""
    return frame_indices(total, "center", num_frames, 0, stride)


def _size_dict(size) -> dict:
    if size is None:
        return {}
    if isinstance(size, dict):
        size = {key: value for key, value in size.items() if value is not None}
    elif not isinstance(size, (int, list, tuple)):  # SizeDict
        size = {key: value for key, value in dict(size).items() if value is not None}
    return dict(get_size_dict(size, default_to_square=False))


def resolve_geometry(resize_mode, size, do_center_crop, mode_given: bool, crop_given: bool) -> tuple[str, dict, bool]:
    """Normalise ``(resize_mode, size, do_center_crop)`` to one consistent geometry.

    ``size`` follows transformers: an int or ``{"shortest_edge": S}`` is the shorter side, ``{"height", "width"}``
    the whole frame. Without an explicit ``resize_mode`` the mode is read from ``size`` and ``do_center_crop``; with
    one, ``size`` is converted to it (``resize_mode="resize", size=256`` is 256x256) and ``do_center_crop`` follows
    it unless also given.
    """
    size = _size_dict(size)
    whole = "height" in size and "width" in size
    if not whole and "shortest_edge" not in size:
        raise ValueError(
            f"size must be {{'height': H, 'width': W}} (whole-frame resize) or {{'shortest_edge': S}} / an int "
            f"(shorter side), got {size}"
        )
    if not mode_given:
        if whole:
            return "resize", {"height": size["height"], "width": size["width"]}, bool(do_center_crop)
        mode = "shorter_side_crop" if do_center_crop else "shorter_side"
        return mode, {"shortest_edge": size["shortest_edge"]}, bool(do_center_crop)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {', '.join(map(repr, RESIZE_MODES))}, got {resize_mode!r}")
    if resize_mode == "resize":
        size = {"height": size["height"], "width": size["width"]} if whole else {
            "height": size["shortest_edge"], "width": size["shortest_edge"]}
    elif whole:
        if size["height"] != size["width"]:
            raise ValueError(
                f"resize_mode={resize_mode!r} needs size={{'shortest_edge': S}} (or an int); got {size}: "
                "use resize_mode='resize' for a whole-frame (height, width) resize"
            )
        size = {"shortest_edge": size["height"]}
    else:
        size = {"shortest_edge": size["shortest_edge"]}
    if not crop_given:
        do_center_crop = resize_mode == "shorter_side_crop"
    elif resize_mode == "shorter_side_crop" and not do_center_crop:
        raise ValueError("resize_mode='shorter_side_crop' needs do_center_crop=True (or resize_mode='shorter_side')")
    return resize_mode, size, bool(do_center_crop)


def resized_size(height: int, width: int, size: dict) -> tuple[int, int]:
    """(height, width) after the resize step for a ``height`` x ``width`` frame (transformers' rounding)."""
    if size.get("height") is not None and size.get("width") is not None:
        return int(size["height"]), int(size["width"])
    short_target = int(size["shortest_edge"])
    if height <= width:
        return short_target, int(short_target * width / height)
    return int(short_target * height / width), short_target


def _pil_filter(resample) -> Image.Resampling:
    try:
        return Image.Resampling(int(resample))
    except (TypeError, ValueError):
        names = ", ".join(f"PILImageResampling.{member.name}" for member in PILImageResampling)
        raise ValueError(f"resample must be a PIL filter ({names}), got {resample!r}") from None


def resize_frames(video: torch.Tensor, height: int, width: int, resample=PILImageResampling.LANCZOS) -> torch.Tensor:
    """Resize every uint8 (C, H, W) frame of ``video`` (T, C, H, W) with ``PIL.Image.resize((W, H), resample)``.

    This is ``mediapy.resize_video``'s per-frame resize, so LANCZOS reproduces the official notebooks bit for bit.
    """
    if video.dtype != torch.uint8:
        raise ValueError(f"resize_frames expects uint8 frames, got {video.dtype}")
    pil_filter = _pil_filter(resample)
    frames = video.permute(0, 2, 3, 1).cpu().numpy()  # channels-last input: the original memory, no copy
    out = np.empty((frames.shape[0], height, width, frames.shape[-1]), np.uint8)
    for index, frame in enumerate(frames):
        if frame.shape[-1] == 3:
            out[index] = np.asarray(Image.fromarray(frame, "RGB").resize((width, height), pil_filter))
        else:  # other channel counts: resize each channel as an 8-bit grey image (the same per-band filter)
            for channel in range(frame.shape[-1]):
                image = Image.fromarray(np.ascontiguousarray(frame[..., channel]), "L")
                out[index, ..., channel] = np.asarray(image.resize((width, height), pil_filter))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(video.device)


def as_uint8_frames(video) -> np.ndarray:
    """A 4-D numpy/torch video as uint8; float values in [0, 1] are quantised with ``round(x * 255)``."""
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu()
        if video.dtype in (torch.bfloat16, torch.float16):
            video = video.float()
        video = video.numpy()
    video = np.asarray(video)
    if video.ndim != 4:
        raise ValueError(
            f"each video must have 4 dimensions (frames, height, width, channels), got shape {tuple(video.shape)}"
        )
    if 0 in video.shape:
        raise ValueError(f"the video is empty: shape {tuple(video.shape)} (frames, height, width, channels)")
    if video.dtype == np.uint8:
        return video
    if np.issubdtype(video.dtype, np.floating):
        if not np.isfinite(video).all():
            raise ValueError("the video contains NaN or infinite values")
        low, high = float(video.min()), float(video.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"float videos must have values in [0, 1], got [{low:.3g}, {high:.3g}]; "
                "pass uint8 frames for values in [0, 255]"
            )
        return np.round(np.clip(video.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(video.dtype, np.integer):
        low, high = int(video.min()), int(video.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"integer videos must have values in [0, 255], got dtype {video.dtype} with values in [{low}, {high}]; "
                "convert to uint8, or to float in [0, 1]"
            )
        return video.astype(np.uint8)
    raise ValueError(f"videos must be uint8 in [0, 255] or float in [0, 1], got dtype {video.dtype}")


def check_array_layout(videos) -> None:
    """One-line ``ValueError`` for an array that is neither a video (T, H, W, C), a batch of videos nor one frame."""
    if not isinstance(videos, (np.ndarray, torch.Tensor)):
        return
    shape = tuple(videos.shape)
    if len(shape) == 3 and shape[-1] not in (1, 3, 4) and shape[0] not in (1, 3, 4):
        raise ValueError(
            f"a 3-D array is read as one (height, width, channels) frame, got shape {shape}: pass a video as "
            "(frames, height, width, channels), a grayscale video as (frames, height, width, 1)"
        )
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"expected a video (frames, height, width, channels) or a batch (videos, frames, height, width, "
            f"channels), got an array of shape {shape}"
        )


class Rep4dVideoProcessor(BaseVideoProcessor):
    r"""Base video processor of the rep4d models.

    Frames are selected (``frame_sampling``), resized (``resize_mode``, with ``PIL.Image.resize`` and ``resample``
    on each uint8 frame), optionally centre-cropped, and returned as float32 ``uint8 / 255`` in [0, 1] under
    ``pixel_values`` with shape (B, T, C, H, W). There is no mean/std normalisation, as in the reference. Float
    inputs must be in [0, 1] and are quantised to uint8 first; NaN or infinite values are refused. The defaults of
    each subclass are its method's official notebook path; :meth:`from_protocol` builds the named protocols.
    """

    resample = PILImageResampling.LANCZOS
    size = {"height": 224, "width": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = False
    image_mean = None
    image_std = None
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    frame_sampling = "consecutive"
    start_frame = 0
    frame_stride = 1
    resize_mode = "resize"
    valid_kwargs = Rep4dVideosKwargs
    model_input_names = ["pixel_values"]
    #: Named preprocessing protocols of this method: name -> processor arguments (see :meth:`from_protocol`).
    protocols: dict[str, dict] = {}

    def __init__(self, **kwargs: Unpack[Rep4dVideosKwargs]):
        # A config saved before frame_sampling/resize_mode existed keeps its old meaning: uniform sampling (or
        # centred frames when it set frame_stride), shorter side + centre crop from its size/crop_size.
        legacy = "video_processor_type" in kwargs and "frame_sampling" not in kwargs
        super().__init__(**kwargs)
        if "num_frames" in kwargs and kwargs["num_frames"] is None:
            self.num_frames = None  # transformers would restore the class default; None means every frame here
        if legacy:
            self.frame_sampling = "center" if kwargs.get("frame_stride") else "uniform"
        check_frame_options(self.frame_sampling, self.start_frame, self.frame_stride, self.num_frames)
        mode_given = "resize_mode" in kwargs and kwargs["resize_mode"] is not None
        if not mode_given and not ({"size", "do_center_crop"} & kwargs.keys()):
            mode_given = True  # class defaults: the class's resize_mode names its own size
        self.resize_mode, size, self.do_center_crop = resolve_geometry(
            self.resize_mode, self.size, self.do_center_crop, mode_given, "do_center_crop" in kwargs
        )
        self.size = self._standardize_kwargs(size=size, default_to_square=False)["size"]
        if self.do_center_crop and self.crop_size is None:
            raise ValueError("do_center_crop=True needs crop_size={'height': H, 'width': W}")

    @classmethod
    def from_dict(cls, video_processor_dict: dict, **kwargs):
        # A `size` override without a `resize_mode` is read as transformers reads it (an int is the shorter side),
        # not converted to the saved mode.
        if "size" in kwargs and "resize_mode" not in kwargs:
            video_processor_dict = {key: value for key, value in video_processor_dict.items() if key != "resize_mode"}
        return super().from_dict(video_processor_dict, **kwargs)

    @classmethod
    def from_protocol(cls, name: str, **overrides) -> Rep4dVideoProcessor:
        """The processor of a named preprocessing protocol (``cls.protocols``), with ``overrides`` applied."""
        if name not in cls.protocols:
            known = ", ".join(repr(key) for key in cls.protocols) or "none"
            raise ValueError(f"unknown {cls.__name__} protocol {name!r}; known protocols: {known}")
        return cls(**{**copy.deepcopy(cls.protocols[name]), **overrides})

    @classmethod
    def for_size(cls, height: int, width: int, num_frames: int | None, **kwargs):
        """A processor producing ``num_frames`` frames (``None``: every frame) of ``height`` x ``width``.

        The whole frame is resized to (height, width) (no crop) unless ``resize_mode`` says otherwise:
        ``"shorter_side_crop"`` resizes the shorter side to ``max(height, width)`` then centre-crops to
        (height, width); ``"shorter_side"`` resizes the shorter side to ``min(height, width)``.
        """
        mode = kwargs.pop("resize_mode", "resize")
        if mode == "shorter_side_crop":
            size = {"shortest_edge": max(height, width)}
        elif mode == "shorter_side":
            size = {"shortest_edge": min(height, width)}
        else:
            size = {"height": height, "width": width}
        kwargs.setdefault("crop_size", {"height": height, "width": width})
        return cls(size=size, resize_mode=mode, num_frames=num_frames, **kwargs)

    def output_geometry(self, height: int, width: int) -> dict:
        """Where a ``height`` x ``width`` frame goes: ``resized`` (h, w), ``crop`` (top, left, h, w) or None, and
        ``output`` (h, w). Pixel (y, x) of the input lands at ``((y + 0.5) * rh / height - 0.5 - top, ...)``."""
        resized = resized_size(height, width, dict(_size_dict(self.size))) if self.do_resize else (height, width)
        if not self.do_center_crop:
            return {"resized": resized, "crop": None, "output": resized}
        crop_h, crop_w = int(self.crop_size["height"]), int(self.crop_size["width"])
        top, left = int((resized[0] - crop_h) / 2.0), int((resized[1] - crop_w) / 2.0)
        return {"resized": resized, "crop": (top, left, crop_h, crop_w), "output": (crop_h, crop_w)}

    def describe(self) -> str:
        """One line saying which frames are kept and how they are resized."""
        frames = "every frame" if self.num_frames is None else f"{self.num_frames} frames"
        if self.frame_sampling == "consecutive":
            frames += f" from frame {self.start_frame} at stride {self.frame_stride} (consecutive)"
        elif self.frame_sampling == "center":
            frames += f" at stride {self.frame_stride}, centred in the video"
        elif self.num_frames is not None:
            frames += " spread uniformly over the video"
        size = _size_dict(self.size)
        if self.resize_mode == "resize":
            geometry = f"whole frame resized to {size['height']}x{size['width']} (no crop)"
        else:
            geometry = f"shorter side resized to {size['shortest_edge']}"
        if self.do_center_crop:
            geometry += f", centre crop {self.crop_size['height']}x{self.crop_size['width']}"
        filter_name = _pil_filter(self.resample).name
        return f"{frames}; {geometry}; PIL {filter_name} on uint8 frames; float32 = uint8 / 255"

    def preprocess(self, videos, **kwargs: Unpack[Rep4dVideosKwargs]) -> BatchFeature:
        geometry_keys = {"resize_mode", "size", "do_center_crop"} & kwargs.keys()
        if geometry_keys:
            mode_given = kwargs.get("resize_mode") is not None
            resize_mode, size, do_center_crop = resolve_geometry(
                kwargs.get("resize_mode"),
                kwargs.get("size", self.size),
                kwargs.get("do_center_crop", self.do_center_crop),
                mode_given,
                "do_center_crop" in kwargs,
            )
            kwargs.update(resize_mode=resize_mode, size=size, do_center_crop=do_center_crop)
        check_array_layout(videos)
        if kwargs.get("fps") is not None and "num_frames" not in kwargs:
            kwargs["num_frames"] = None  # fps sampling asked for in this call: the saved num_frames does not apply
        return super().preprocess(videos, **kwargs)

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames=_UNSET,
        fps: float | None = None,
        frame_sampling: str | None = None,
        start_frame: int | None = None,
        frame_stride: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to keep. ``fps`` sampling (transformers') applies only when ``num_frames`` is None."""
        if num_frames is _UNSET:
            num_frames = None if fps is not None else self.num_frames
        if fps is not None:
            if num_frames is not None:
                raise ValueError("`num_frames` and `fps` are mutually exclusive arguments, please use only one!")
            return default_sample_indices_fn(metadata=metadata, num_frames=None, fps=fps)
        return frame_indices(
            metadata.total_num_frames,
            frame_sampling if frame_sampling is not None else self.frame_sampling,
            num_frames,
            self.start_frame if start_frame is None else start_frame,
            self.frame_stride if frame_stride is None else frame_stride,
        )

    def to_json_file(self, json_file_path) -> None:
        """Write the JSON config atomically (a temporary file renamed into place: never a partial file)."""
        import os
        import tempfile

        folder = os.path.dirname(os.path.abspath(json_file_path))
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".video_preprocessor_", suffix=".json.tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as writer:
                writer.write(self.to_json_string())
            os.replace(temporary, json_file_path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(x, sample_indices_fn=sample_indices_fn) for x in video_url_or_urls]))
        return read_video_pyav(video_url_or_urls, sample_indices_fn)

    def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
        """Each video as a uint8 (T, C, H, W) tensor. A channels-last input stays channels-last in memory (a permuted
        view), so the per-frame PIL resize reads it without a copy."""
        prepared = []
        for video in videos:
            frames = torch.from_numpy(np.ascontiguousarray(as_uint8_frames(video)))
            data_format = (
                ChannelDimension(input_data_format) if input_data_format is not None
                else infer_channel_dimension_format(frames)
            )
            if data_format == ChannelDimension.LAST:
                frames = frames.permute(0, 3, 1, 2)
            if do_convert_rgb:
                frames = self.convert_to_rgb(frames)
                if frames.is_floating_point():  # RGBA blended over white (transformers' formula): back to uint8
                    frames = frames.round().clamp(0, 255).to(torch.uint8)
            if device is not None:
                frames = frames.to(device)
            prepared.append(frames)
        return prepared

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size,
        resample,
        do_center_crop: bool,
        crop_size,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        processed = []
        for video in videos:  # uint8 (T, C, H, W)
            if do_resize:
                height, width = resized_size(video.shape[-2], video.shape[-1], dict(_size_dict(size)))
                video = resize_frames(video, height, width, resample)
            if do_center_crop:
                video = self.center_crop(video, crop_size)
            video = video.to(torch.float32)
            if do_rescale:
                # Division, not multiplication by 1/255: bit-identical to the notebooks' `u8.astype(float32) / 255`.
                video = video / 255.0 if rescale_factor == 1 / 255 else video * rescale_factor
            if do_normalize:
                video = self.normalize(video, image_mean, image_std)
            processed.append(video)
        shapes = sorted({tuple(video.shape) for video in processed})
        if return_tensors is not None and len(shapes) > 1:
            raise ValueError(
                f"the processed videos have different shapes (frames, channels, height, width) {shapes} and cannot be "
                "stacked: use a fixed (height, width) (resize_mode='resize') and num_frames, or return_tensors=None"
            )
        return BatchFeature(data={"pixel_values": processed}, tensor_type=return_tensors)
