"""Writing results people can look at: MP4/GIF videos and PNG images, colour maps and overlays."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np


def to_uint8(frames) -> np.ndarray:
    """Float frames in [0, 1] (or uint8) -> uint8, any leading shape, channels last."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(np.nan_to_num(frames.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


DEFAULT_FPS = 8.0  # frame rate of videos that have no source video (synthetic clips)


def frame_rate(fps) -> Fraction:
    """A frame rate as an exact fraction: 25 -> 25/1, 29.97 (or 30000/1001) -> 30000/1001, 12.5 -> 25/2."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps


def read_video_fps(path: str | os.PathLike) -> float | None:
    """The frame rate in a video file's header (None when the container does not say)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def write_video(path: str | os.PathLike, frames, fps: float = DEFAULT_FPS, options: dict | None = None) -> Path:
    """Write (T, H, W, 3) frames as .mp4 (H.264), .webm (VP9) or .gif, atomically; odd sizes are padded for H.264.

    ``fps`` is kept exactly (29.97 is written as 30000/1001): pass the source video's frame rate (see
    ``read_video_pyav``'s metadata); the default 8 is for synthetic clips without a source.
    ``options`` are encoder options (default crf 18 for H.264); for many tiny clips
    ``{"crf": "18", "preset": "veryfast", "threads": "1"}`` is about 3x faster (x264's thread start-up dominates).
    """
    import av

    rate = frame_rate(fps)
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
        temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
        images[0].save(temporary, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / float(rate))), loop=0)
        os.replace(temporary, path)
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
        stream = container.add_stream(codec, rate=rate)
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


# Labelled pictures: panels with captions, a title, a legend and colour bars (PIL only) -------------------------------

MIN_PANEL_SIDE = 256  # every panel of a labelled picture is at least this many pixels on its shorter side
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def font(size: int = 16):
    """PIL's default font at ``size`` pixels (a scalable font with Pillow >= 10.1, else the fixed bitmap font)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: fixed-size bitmap font
        return ImageFont.load_default()


def upscale(image, min_side: int = MIN_PANEL_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement by the smallest integer factor that makes the shorter side >= ``min_side``
    (pixels stay crisp squares, so a tiny model's 32x32 output is shown as it is)."""
    image = np.asarray(image)
    factor = max(1, -(-int(min_side) // max(1, min(image.shape[:2]))))
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _text_size(draw, text: str, text_font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=text_font)
    return right - left, bottom - top


def _wrap(draw, text: str, text_font, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide."""
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}".strip()
            if line and _text_size(draw, candidate, text_font)[0] > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def colorbar(height: int, vmin: float, vmax: float, label: str = "", name: str = "turbo", width: int = 18) -> np.ndarray:
    """A vertical colour bar (uint8 (height, W, 3)): the ramp of :func:`colormap` (``vmax`` at the top) with the range's
    ends and middle written next to it and ``label`` above."""
    from PIL import Image, ImageDraw

    small = font(13)
    ramp = colormap(np.linspace(1.0, 0.0, max(height - 40, 8))[:, None].repeat(width, 1), 0.0, 1.0, name)
    ramp = to_uint8(ramp)
    ticks = [f"{value:.3g}" for value in (vmax, (vmin + vmax) / 2, vmin)]
    canvas = Image.new("RGB", (width + 12 + max(len(t) for t in ticks + [label[:10]]) * 8, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((0, 2), label, fill=INK, font=small)
    top = 24
    canvas.paste(Image.fromarray(ramp), (0, top))
    draw.rectangle([0, top, width - 1, top + ramp.shape[0] - 1], outline=INK)
    for index, text in enumerate(ticks):
        y = top + int(round(index * (ramp.shape[0] - 1) / 2))
        draw.line([(width, y), (width + 4, y)], fill=INK)
        draw.text((width + 6, y - 7), text, fill=INK, font=small)
    return np.asarray(canvas)


def _legend_marker(draw, marker: str, x: int, y: int, color, size: int = 14) -> None:
    color = tuple(int(round(c * 255)) if isinstance(c, float) or c <= 1 else int(c) for c in color)
    box = [x, y, x + size, y + size]
    if marker == "filled":
        draw.ellipse(box, fill=color, outline=INK)
    elif marker == "hollow":
        draw.ellipse(box, outline=color, width=3)
    elif marker == "cross":
        draw.line([(x, y), (x + size, y + size)], fill=color, width=3)
        draw.line([(x, y + size), (x + size, y)], fill=color, width=3)
    elif marker == "line":
        draw.line([(x, y + size // 2), (x + size, y + size // 2)], fill=color, width=3)
    elif marker == "hollow_square":
        draw.rectangle(box, outline=color, width=3)
    else:  # "patch": a filled square
        draw.rectangle(box, fill=color, outline=INK)


def labelled_picture(panels, captions, title: str | None = None, legend=None, colorbars=None, notes=None,
                     min_side: int = MIN_PANEL_SIDE, gap: int = 8) -> np.ndarray:
    """Panels side by side, each enlarged (nearest) to at least ``min_side`` pixels and captioned above, under a
    title, with an optional legend, colour bars and notes below; returns uint8 (H, W, 3).

    Args:
        panels: (H, W, 3) images (float in [0, 1] or uint8), any sizes (shorter panels are padded at the bottom).
        captions: one caption per panel, e.g. "input", "prediction", "ground truth".
        title: a line (or lines) above everything; a title containing "below baseline" is drawn in red.
        legend: (marker, rgb colour, text) items; marker is "filled", "hollow", "cross", "line", "patch" or
            "hollow_square".
        colorbars: dicts of :func:`colorbar` keyword arguments (``vmin``, ``vmax``, ``label``, ``name``), drawn to
            the right of the panels.
        notes: lines of small text under the legend.
    """
    from PIL import Image, ImageDraw

    panels = [to_uint8(upscale(panel, min_side)) for panel in panels]
    if len(captions) != len(panels):
        raise ValueError(f"give one caption per panel: {len(panels)} panels, {len(captions)} captions")
    title_font, caption_font, small = font(20), font(16), font(14)
    height = max(panel.shape[0] for panel in panels)
    bars = [colorbar(height, **bar) for bar in (colorbars or [])]
    width = sum(panel.shape[1] for panel in panels) + gap * (len(panels) + 1)
    width += sum(bar.shape[1] + gap for bar in bars)
    scratch = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    title_lines = _wrap(scratch, title, title_font, width - 2 * gap) if title else []
    note_lines = [line for note in (notes or []) for line in _wrap(scratch, note, small, width - 2 * gap)]
    legend = list(legend or [])
    # Legend items flow left to right and wrap.
    legend_rows, row, row_width = [], [], gap
    for item in legend:
        item_width = 22 + _text_size(scratch, item[2], small)[0] + 18
        if row and row_width + item_width > width - gap:
            legend_rows.append(row)
            row, row_width = [], gap
        row.append((item, item_width))
        row_width += item_width
    if row:
        legend_rows.append(row)
    title_height = 26 * len(title_lines) + (6 if title_lines else 0)
    caption_height = 24
    total = (gap + title_height + caption_height + height + gap + 22 * len(legend_rows) + 18 * len(note_lines)
             + (gap if legend_rows or note_lines else 0))
    canvas = Image.new("RGB", (width, total), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = gap
    warning = bool(title) and "below baseline" in title.lower()
    for line in title_lines:
        draw.text((gap, y), line, fill=(200, 0, 0) if warning else INK, font=title_font)
        y += 26
    y += 6 if title_lines else 0
    x = gap
    for panel, caption in zip(panels, captions):
        text_width = _text_size(draw, caption, caption_font)[0]
        draw.text((x + max(0, (panel.shape[1] - text_width) // 2), y), caption, fill=INK, font=caption_font)
        canvas.paste(Image.fromarray(panel), (x, y + caption_height))
        x += panel.shape[1] + gap
    for bar in bars:
        canvas.paste(Image.fromarray(bar), (x, y + caption_height))
        x += bar.shape[1] + gap
    y += caption_height + height + gap
    for row in legend_rows:
        x = gap
        for (marker, color, text), item_width in row:
            _legend_marker(draw, marker, x, y + 2, color)
            draw.text((x + 22, y), text, fill=INK, font=small)
            x += item_width
        y += 22
    for line in note_lines:
        draw.text((gap, y), line, fill=(70, 70, 70), font=small)
        y += 18
    return np.asarray(canvas)


def draw_markers(frame, points_xy, colors, marker: str = "filled", radius: int = 5, visible=None) -> np.ndarray:
    """Draw markers at (x, y) pixel positions on an (H, W, 3) frame (float [0, 1] or uint8) -> float (H, W, 3).

    ``marker`` "filled" (a disc with a dark rim), "hollow" (a ring) or "cross"; with ``visible`` given, points that are
    not visible are drawn hollow whatever ``marker`` says (a "cross" stays a cross, thinner).
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(to_uint8(frame))
    draw = ImageDraw.Draw(image)
    for index, (x, y) in enumerate(np.asarray(points_xy, dtype=np.float32).reshape(-1, 2)):
        if not np.isfinite([x, y]).all():
            continue
        color = tuple(int(round(float(c) * 255)) for c in colors[index % len(colors)])
        box = [x - radius, y - radius, x + radius, y + radius]
        shown = visible is None or bool(visible[index])
        if marker == "cross":
            width = 3 if shown else 1
            draw.line([(x - radius, y - radius), (x + radius, y + radius)], fill=color, width=width)
            draw.line([(x - radius, y + radius), (x + radius, y - radius)], fill=color, width=width)
        elif marker == "filled" and shown:
            draw.ellipse(box, fill=color, outline=(0, 0, 0), width=1)
        else:
            draw.ellipse(box, outline=color, width=2)
    return np.asarray(image).astype(np.float32) / 255.0


def draw_trails(frame, paths_xy, colors, width: int = 2) -> np.ndarray:
    """Draw each point's path so far, (N, t, 2) pixel (x, y) positions, as a line in its colour on an (H, W, 3) frame
    (float [0, 1] or uint8) -> float (H, W, 3). Non-finite positions break a path."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(to_uint8(frame))
    draw = ImageDraw.Draw(image)
    for index, path in enumerate(np.asarray(paths_xy, dtype=np.float32)):
        color = tuple(int(round(float(c) * 255)) for c in colors[index % len(colors)])
        for start, end in zip(path[:-1], path[1:]):
            if np.isfinite(start).all() and np.isfinite(end).all():
                draw.line([tuple(map(float, start)), tuple(map(float, end))], fill=color, width=width)
    return np.asarray(image).astype(np.float32) / 255.0
