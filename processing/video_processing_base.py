"""Video processor shared by the rep4d models: PyAV decoding, frame sampling, resize/crop, float output in [0, 1].

The reference models take raw RGB in [0, 1] with no mean/std normalisation. Inputs may be file paths (mp4, webm,
anything FFmpeg reads; decoded with PyAV, which needs no system FFmpeg), numpy arrays or torch tensors of shape
(T, H, W, C) or (T, C, H, W) (uint8 in [0, 255] or float in [0, 1]), lists of PIL images, or lists/batches of these.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import BaseVideoProcessor
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_utils import VideoMetadata, default_sample_indices_fn


class Rep4dVideosKwargs(VideosKwargs, total=False):
    """Extra keyword arguments: ``frame_stride`` samples ``num_frames`` consecutive frames at that stride."""

    frame_stride: int | None


def read_video_pyav(path, sample_indices_fn=None) -> tuple[np.ndarray, VideoMetadata]:
    """Decode the frames chosen by ``sample_indices_fn`` as uint8 (T, H, W, 3) RGB.

    ``path`` is a file path or a binary file object (e.g. ``io.BytesIO`` of a ``Video(decode=False)`` column).
    """
    import av

    with av.open(path if hasattr(path, "read") else str(path)) as container:
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


def strided_indices(total: int, num_frames: int, stride: int) -> np.ndarray:
    """``num_frames`` consecutive indices at ``stride``, centred in a video of ``total`` frames."""
    span = (num_frames - 1) * stride + 1
    if total < span:
        raise ValueError(
            f"the video has {total} frames; {num_frames} frames at stride {stride} need at least {span}"
        )
    start = (total - span) // 2
    return np.arange(start, start + span, stride)


class Rep4dVideoProcessor(BaseVideoProcessor):
    r"""Base video processor of the rep4d models.

    Frames are sampled (``num_frames`` uniformly over the video, or consecutive frames at ``frame_stride``),
    resized so that the shorter side matches and centre-cropped to ``crop_size``, and returned as float32 in
    [0, 1] under ``pixel_values`` with shape (B, T, C, H, W). There is no mean/std normalisation, as in the
    reference. Float inputs must already be in [0, 1]; NaN or infinite values are refused.
    """

    resample = PILImageResampling.BILINEAR
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = False
    image_mean = None
    image_std = None
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    frame_stride = None
    valid_kwargs = Rep4dVideosKwargs
    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs: Unpack[Rep4dVideosKwargs]):
        super().__init__(**kwargs)

    @classmethod
    def for_size(cls, height: int, width: int, num_frames: int | None, **kwargs):
        """A processor producing ``num_frames`` frames of ``height`` x ``width``."""
        return cls(
            size={"shortest_edge": max(height, width)},
            crop_size={"height": height, "width": width},
            num_frames=num_frames,
            **kwargs,
        )

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        frame_stride: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        num_frames = num_frames if num_frames is not None else self.num_frames
        frame_stride = frame_stride if frame_stride is not None else self.frame_stride
        if frame_stride is not None:
            if frame_stride < 1:
                raise ValueError(f"frame_stride must be a positive integer, got {frame_stride}")
            if num_frames is None:
                raise ValueError("frame_stride needs num_frames")
            return strided_indices(metadata.total_num_frames, num_frames, frame_stride)
        if fps is not None and num_frames is not None:
            raise ValueError("`num_frames` and `fps` are mutually exclusive arguments, please use only one!")
        fps = fps if fps is not None else self.fps
        if num_frames is not None and metadata.total_num_frames < num_frames:
            raise ValueError(f"the video has {metadata.total_num_frames} frames, fewer than num_frames={num_frames}")
        return default_sample_indices_fn(metadata=metadata, num_frames=num_frames, fps=fps, **kwargs)

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(x, sample_indices_fn=sample_indices_fn) for x in video_url_or_urls]))
        return read_video_pyav(video_url_or_urls, sample_indices_fn)

    def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
        checked = []
        for video in videos:
            if isinstance(video, np.ndarray):
                video = torch.from_numpy(np.ascontiguousarray(video))
            if video.ndim != 4:
                raise ValueError(f"each video must have 4 dimensions (frames, height, width, channels), got {tuple(video.shape)}")
            if video.is_floating_point():
                if not torch.isfinite(video).all():
                    raise ValueError("the video contains NaN or infinite values")
                low, high = float(video.min()), float(video.max())
                if low < -1e-3 or high > 1 + 1e-3:
                    raise ValueError(
                        f"float videos must have values in [0, 1], got [{low:.3g}, {high:.3g}]; "
                        "pass uint8 frames for values in [0, 255]"
                    )
                # Scale to the uint8 range so one rescale step (1/255) serves every input kind.
                video = video.float() * 255.0
            elif video.dtype == torch.bool or video.is_complex():
                raise ValueError(f"videos must be uint8 or float, got dtype {video.dtype}")
            elif video.dtype != torch.uint8:
                if int(video.min()) < 0 or int(video.max()) > 255:
                    raise ValueError(f"integer videos must have values in [0, 255], got dtype {video.dtype}")
                video = video.to(torch.uint8)
            checked.append(video)
        return super()._prepare_input_videos(
            checked, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, device=device
        )

    def _preprocess(self, videos, **kwargs):
        # Resize in float so uint8 and float inputs give the same result (uint8 resizing rounds to integers).
        videos = [video.float() for video in videos]
        output = super()._preprocess(videos, **kwargs)
        pixel_values = output.pop("pixel_values_videos")
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.clamp_(0.0, 1.0)
        else:
            pixel_values = [video.clamp(0.0, 1.0) for video in pixel_values]
        output["pixel_values"] = pixel_values
        return output
