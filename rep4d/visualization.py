"""Writing results people can look at: MP4/GIF videos and PNG images, colour maps and overlays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def to_uint8(frames) -> np.ndarray:
    """Float frames in [0, 1] (or uint8) -> uint8, any leading shape, channels last."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(np.nan_to_num(frames.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_video(path: str | os.PathLike, frames, fps: float = 8.0, options: dict | None = None) -> Path:
    """Write (T, H, W, 3) frames as .mp4 (H.264), .webm (VP9) or .gif, atomically; odd sizes are padded for H.264.

    ``options`` are encoder options (default crf 18 for H.264); for many tiny clips
    ``{"crf": "18", "preset": "veryfast", "threads": "1"}`` is about 3x faster (x264's thread start-up dominates).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = to_uint8(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return path
    codec, pix_fmt = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p")}.get(suffix, (None, None))
    if codec is None:
        raise ValueError(f"unsupported video format {suffix!r}; use .mp4, .webm or .gif")
    height, width = frames.shape[1:3]
    pad_h, pad_w = height % 2, width % 2  # yuv420p needs even sizes
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    with av.open(str(temporary), mode="w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = options if options is not None else ({"crf": "18"} if codec == "libx264" else {})
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    os.replace(temporary, path)
    return path


def write_png(path: str | os.PathLike, image) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def colormap(values, vmin: float | None = None, vmax: float | None = None, name: str = "turbo") -> np.ndarray:
    """Map scalars to RGB in [0, 1] (a small built-in turbo/viridis-like ramp; no matplotlib needed)."""
    values = np.asarray(values, dtype=np.float32)
    finite = values[np.isfinite(values)]
    vmin = float(finite.min()) if vmin is None and finite.size else (vmin or 0.0)
    vmax = float(finite.max()) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
    scaled = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    anchors = {
        "turbo": np.array([[0.19, 0.07, 0.23], [0.16, 0.47, 0.93], [0.10, 0.85, 0.63], [0.64, 0.99, 0.24],
                           [0.98, 0.73, 0.22], [0.88, 0.27, 0.05], [0.48, 0.02, 0.01]], dtype=np.float32),
        "viridis": np.array([[0.27, 0.00, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38],
                             [0.99, 0.91, 0.14]], dtype=np.float32),
    }[name]
    position = scaled * (len(anchors) - 1)
    low = np.floor(position).astype(int).clip(0, len(anchors) - 2)
    weight = (position - low)[..., None]
    return anchors[low] * (1 - weight) + anchors[low + 1] * weight


def distinct_colors(count: int, seed: int = 0) -> np.ndarray:
    """``count`` well-separated RGB colours in [0, 1] (golden-ratio hues)."""
    import colorsys

    hues = (np.arange(count) * 0.618033988749895 + seed * 0.1) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.85, 0.95) for h in hues], dtype=np.float32).reshape(count, 3)


def draw_points(frame: np.ndarray, points_xy, colors, visible=None, radius: int = 2) -> np.ndarray:
    """Draw filled squares at (x, y) pixel positions on a float (H, W, 3) frame; hidden points are hollow."""
    frame = np.array(frame, dtype=np.float32, copy=True)
    height, width = frame.shape[:2]
    for index, (x, y) in enumerate(np.asarray(points_xy, dtype=np.float32)):
        if not np.isfinite([x, y]).all():
            continue
        cx, cy = int(round(float(x))), int(round(float(y)))
        y0, y1, x0, x1 = max(cy - radius, 0), min(cy + radius + 1, height), max(cx - radius, 0), min(cx + radius + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        color = colors[index % len(colors)]
        if visible is None or visible[index]:
            frame[y0:y1, x0:x1] = color
        else:
            frame[y0:y1, x0] = frame[y0:y1, x1 - 1] = color
            frame[y0, x0:x1] = frame[y1 - 1, x0:x1] = color
    return frame


def draw_box(frame: np.ndarray, box_yxyx, color, thickness: int = 1) -> np.ndarray:
    """Draw a (ymin, xmin, ymax, xmax) pixel box outline on a float (H, W, 3) frame."""
    frame = np.array(frame, dtype=np.float32, copy=True)
    height, width = frame.shape[:2]
    y0, x0, y1, x1 = (int(round(float(v))) for v in box_yxyx)
    y0, y1 = np.clip([y0, y1], 0, height - 1)
    x0, x1 = np.clip([x0, x1], 0, width - 1)
    for offset in range(thickness):
        frame[min(y0 + offset, height - 1), x0 : x1 + 1] = color
        frame[max(y1 - offset, 0), x0 : x1 + 1] = color
        frame[y0 : y1 + 1, min(x0 + offset, width - 1)] = color
        frame[y0 : y1 + 1, max(x1 - offset, 0)] = color
    return frame


def overlay_mask(frame: np.ndarray, mask: np.ndarray, color=(1.0, 0.2, 0.2), alpha: float = 0.5) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.float32)[..., None]
    return frame * (1 - alpha * mask) + np.asarray(color, dtype=np.float32) * alpha * mask
