"""The steps of ``rep4d demo`` as library code: each step runs one method on a clip, writes labelled pictures and a
video, and returns its metric next to a trivial baseline with a one-word verdict.

Two clips:

* ``synthetic``: a clip rendered by :func:`rep4d.training.synthetic.generate_clip`, with exact ground truth
  (segmentation, point tracks); written at 8 fps (it has no source video).
* ``real``: a short real video shipped with the package, ``rep4d/assets/bigbuckbunny_clip.mp4`` (24 frames of Big
  Buck Bunny, CC-BY 3.0 (c) Blender Foundation, see ``rep4d/assets/ATTRIBUTION.md``); its videos keep its frame rate.

Steps (each a function returning :class:`StepResult` objects):

=========================  =============================================  ===========================================
step                       metric                                         trivial baseline
=========================  =============================================  ===========================================
:func:`moog_next_frame`    next-frame MSE (frames 1..T-1)                 copy the last frame
:func:`masked_reconstruction`  MSE on the hidden 4DS tubelets             mean colour of the visible tubelets
:func:`label_propagation`  DAVIS J&F (synthetic clip only)                copy the first-frame mask to every frame
:func:`rvm_reconstruction` MSE on the hidden patches of the target frames copy the last source frame
:func:`point_tracking`     TAP-Vid average Jaccard (synthetic clip only)  every point stays at its query
=========================  =============================================  ===========================================

A verdict is ``better`` or ``worse`` (a tie is ``worse``); a step whose method does worse than its baseline says
"below baseline" in its picture's title and in the summary. The real clip has no ground truth for masks and tracks:
those steps show the prediction only (verdict ``n/a``). :func:`run_demo` runs everything and writes ``summary.md``
(pictures inline, the verdict table) and ``summary.json`` (the numbers).

The presets (the synthetic clip's size, which ``model_zoo/`` folder serves which step, the size of the random model a
missing folder is replaced by) are in :mod:`rep4d.configuration.zoo_recipes`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rep4d.configuration.zoo_recipes import (
    DEMO_GRID_TOKENS,
    DEMO_MODELS,
    DEMO_NUM_FRAMES,
    DEMO_NUM_POINTS,
    DEMO_RESOLUTION,
    demo_fallback_config,
    demo_fallback_readout,
)
from rep4d.visualization import (
    DEFAULT_FPS,
    distinct_colors,
    draw_markers,
    draw_trails,
    labelled_picture,
    overlay_mask,
    to_uint8,
    upscale,
    write_png,
    write_video,
)

ASSET_DIR = Path(__file__).resolve().parent / "assets"
DEMO_VIDEO = ASSET_DIR / "bigbuckbunny_clip.mp4"
ZOO_NOTE = "trained on synthetic clips for demonstration"
# Many small videos: x264's thread start-up dominates, one thread and a fast preset are ~3x faster.
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1"}
BELOW_BASELINE = "below baseline"


# Clips ---------------------------------------------------------------------------------------------------------------


@dataclass
class DemoClip:
    """A clip the demo runs on.

    Args:
        name: ``synthetic`` or ``real`` (used in file names).
        frames: (T, H, W, 3) uint8 RGB frames.
        fps: frame rate of the written videos (the source's for a real video).
        description: where the clip comes from.
        truth: the synthetic clip's ground truth (``generate_clip`` fields), None for a real video.
    """

    name: str
    frames: np.ndarray
    fps: float
    description: str
    truth: dict | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def synthetic_clip(num_frames: int = DEMO_NUM_FRAMES, resolution=DEMO_RESOLUTION, seed: int = 0,
                   num_points: int = DEMO_NUM_POINTS) -> DemoClip:
    """A synthetic clip with ground truth (objects moving over a textured background, a panning camera)."""
    from rep4d.training.synthetic import generate_clip

    height, width = resolution
    if num_frames < 4:
        raise ValueError(f"the synthetic clip needs at least 4 frames, got {num_frames}")
    if min(height, width) < 16:
        raise ValueError(f"the synthetic clip must be at least 16x16 pixels, got {height}x{width}")
    clip = generate_clip(seed, num_frames=num_frames, height=height, width=width, num_points=num_points,
                         query_mode="first")
    return DemoClip("synthetic", clip["video"], DEFAULT_FPS,
                    f"synthetic clip (rep4d.training.synthetic, seed {seed}, {num_frames} frames, {height}x{width})",
                    truth=clip)


def real_clip(path: str | os.PathLike = DEMO_VIDEO, num_frames: int | None = None) -> DemoClip:
    """The first ``num_frames`` (default all) frames of a video file, with its frame rate from the file's header."""
    from rep4d.processing.video_processing_base import read_video_pyav

    path = Path(path)
    frames, metadata = read_video_pyav(
        path, (lambda metadata: np.arange(min(num_frames, metadata.total_num_frames))) if num_frames else None)
    fps = float(metadata.fps) if metadata.fps else DEFAULT_FPS
    note = " (Big Buck Bunny, CC-BY 3.0 (c) Blender Foundation)" if path.resolve() == DEMO_VIDEO else ""
    return DemoClip("real", frames, fps,
                    f"{path.name}{note}: {len(frames)} frames, {frames.shape[1]}x{frames.shape[2]}, {fps:g} fps")


GRASS_RULE = "green >= 0.9 x red, green > 1.3 x blue and green > 0.2"


def grass_mask(frame: np.ndarray) -> np.ndarray:
    """A first-frame mask for the real clip from a plain colour threshold (not a model): label 1 where a pixel is
    green-dominant (``GRASS_RULE``), else 0. (H, W, 3) uint8 -> (H, W) int64."""
    rgb = np.asarray(frame, dtype=np.float32) / 255.0
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mask = (green >= 0.9 * red) & (green > 1.3 * blue) & (green > 0.2)
    return mask.astype(np.int64)


def to_video_tensor(frames: np.ndarray, size, num_frames: int | None = None) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, num_frames, 3, *size) in [0, 1], a model's input: whole-frame antialiased
    bilinear resize (none when the frames already have ``size``), then the first ``num_frames`` frames (the last frame
    repeated when the clip is shorter; None keeps every frame). :func:`to_hwc` is the way back."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
    if tuple(video.shape[-2:]) != tuple(size):
        video = torch.nn.functional.interpolate(video, size=tuple(size), mode="bilinear", antialias=True)
    video = video.clamp(0, 1)
    if num_frames is not None:
        if video.shape[0] < num_frames:
            video = torch.cat([video, video[-1:].expand(num_frames - video.shape[0], -1, -1, -1)])
        video = video[:num_frames]
    return video.unsqueeze(0)


def to_hwc(video: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) tensor -> float (T, H, W, 3) numpy in [0, 1]."""
    return video.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


# Results -------------------------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    """One step on one clip: its metric, the trivial baseline's value of the same metric, and the files written."""

    step: str
    clip: str
    model: str
    metric: str
    value: float | None
    baseline: str
    baseline_value: float | None
    lower_is_better: bool
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    # Other trivial predictions the method must also beat (name -> value), e.g. the empty mask for J&F, which scores
    # 1 on every frame an object has left: a metric an empty prediction can win proves nothing on its own.
    other_baselines: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # step-specific numbers (fractions, sizes), kept in summary.json

    @property
    def verdict(self) -> str:
        """``better`` than the baseline and every other trivial prediction, else ``worse`` (a tie is ``worse``);
        ``n/a`` without ground truth."""
        if self.value is None or self.baseline_value is None:
            return "n/a"
        values = [self.baseline_value, *self.other_baselines.values()]
        if self.lower_is_better:
            return "better" if all(self.value < value for value in values) else "worse"
        return "better" if all(self.value > value for value in values) else "worse"

    @property
    def headline(self) -> str:
        """``metric 0.0123 vs baseline 0.0067: worse (below baseline)``, for titles and printing."""
        if self.verdict == "n/a":
            return f"no ground truth on this clip ({self.metric} not computed)"
        text = f"{self.metric} {self.value:.4g} vs {self.baseline} {self.baseline_value:.4g}"
        text += "".join(f", {name} {value:.4g}" for name, value in self.other_baselines.items())
        return text + f": {self.verdict}" + (f" ({BELOW_BASELINE})" if self.verdict == "worse" else "")

    def to_dict(self) -> dict:
        return {"step": self.step, "clip": self.clip, "model": self.model, "metric": self.metric, "value": self.value,
                "baseline": self.baseline, "baseline_value": self.baseline_value,
                "other_baselines": self.other_baselines, "lower_is_better": self.lower_is_better,
                "verdict": self.verdict, "details": self.details, "files": self.files,
                "seconds": round(self.seconds, 2), "note": self.note}


class _Writer:
    """Writes a step's pictures and videos into ``folder`` and remembers their names."""

    def __init__(self, folder: Path, fps: float):
        self.folder, self.fps, self.files = Path(folder), float(fps), []

    def png(self, name: str, image) -> str:
        write_png(self.folder / name, image)
        self.files.append(name)
        return name

    def video(self, name: str, frames) -> str:
        write_video(self.folder / name, np.stack([to_uint8(frame) for frame in frames]), fps=self.fps,
                    options=VIDEO_OPTIONS)
        self.files.append(name)
        return name


def display_scale(image_hw, clip_hw, min_side: int = 256) -> tuple[int, int]:
    """(height, width) at which a model-resolution image of a clip is shown: the clip's aspect ratio (a model's square
    input of a 16:9 video is stretched back), the shorter side at least ``min_side``, whole-pixel nearest scaling."""
    height, width = image_hw
    clip_h, clip_w = clip_hw
    target_h = max(height, min_side if clip_h <= clip_w else -(-min_side * clip_h // clip_w))
    target_h = -(-target_h // height) * height  # a multiple of the rows: every model pixel the same height
    return target_h, max(1, round(target_h * clip_w / clip_h))


def shown(image, clip: DemoClip, min_side: int = 256) -> np.ndarray:
    """A model-resolution (h, w, 3) image enlarged (nearest) to :func:`display_scale` for a picture panel."""
    from PIL import Image

    image = to_uint8(image)
    height, width = display_scale(image.shape[:2], clip.size, min_side)
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def _title(name: str, clip: DemoClip, result: StepResult) -> str:
    return f"{name} ({clip.name} clip): {result.headline}"


# Step: MooG next-frame prediction and token attention ------------------------------------------------------------------


def moog_next_frame(model, clip: DemoClip, output, description: str = "", seed: int = 0,
                    attention: bool = True) -> StepResult:
    """MooG predicts every frame from the frames before it. Metric: MSE of the predictions of frames 1..T-1 against
    the frames (model resolution); baseline: copying the previous frame. Writes ``<clip>_moog_next_frame.png/.mp4``
    (input frame t-1 | prediction of t | ground truth t) and, with ``attention``, ``<clip>_moog_attention.png/.mp4``
    (which off-the-grid token each pixel reads from)."""
    start = time.perf_counter()
    writer = _Writer(output, clip.fps)
    frames = to_video_tensor(clip.frames, model.config.image_size)
    with torch.inference_mode():
        prediction = model(frames, generator=torch.Generator().manual_seed(seed))
    predicted = to_hwc(prediction.predicted_pixel_values[0])
    truth = to_hwc(frames[0])
    result = StepResult("moog_next_frame", clip.name, description, "next-frame MSE",
                        float(((predicted[1:] - truth[1:]) ** 2).mean()), "copy-last-frame MSE",
                        float(((truth[:-1] - truth[1:]) ** 2).mean()), lower_is_better=True)
    title = _title("MooG next-frame prediction", clip, result)
    notes = [f"model: {description}", f"frames resized to the model's {frames.shape[-2]}x{frames.shape[-1]} input "
             "and enlarged (nearest) for display"]

    def picture(t):
        return labelled_picture([shown(image, clip) for image in (truth[t - 1], predicted[t], truth[t])],
                                [f"input: frame {t - 1}", f"prediction: frame {t}", f"ground truth: frame {t}"],
                                title=title, notes=notes)

    last = len(truth) - 1
    writer.png(f"{clip.name}_moog_next_frame.png", picture(last))
    writer.video(f"{clip.name}_moog_next_frame.mp4", [picture(t) for t in range(1, len(truth))])
    if attention:
        from rep4d.moog_attention import attention_pictures, decoder_attention_maps

        with torch.inference_mode():
            maps = decoder_attention_maps(model, frames, generator=torch.Generator().manual_seed(seed))
        pictures = attention_pictures(truth, np.asarray(maps[0]), title=f"MooG token attention ({clip.name} clip)",
                                      display_hw=display_scale(truth.shape[1:3], clip.size))
        writer.png(f"{clip.name}_moog_attention.png", pictures[last])
        writer.video(f"{clip.name}_moog_attention.mp4", pictures)
    result.files, result.seconds = writer.files, time.perf_counter() - start
    return result


# Step: 4DS masked reconstruction ---------------------------------------------------------------------------------------


def tubelet_pixel_mask(mask: torch.Tensor, token_grid, tubelet_size) -> np.ndarray:
    """(N,) tubelet mask (1 = hidden) on a (t, h, w) token grid -> (t*pt, h*ph, w*pw) boolean pixel mask."""
    grid = np.asarray(mask.detach().cpu().numpy() > 0.5).reshape(tuple(token_grid))
    for axis, size in enumerate(tubelet_size):
        grid = np.repeat(grid, size, axis=axis)
    return grid


def masked_reconstruction(model, clip: DemoClip, output, description: str = "", seed: int = 0) -> StepResult:
    """4DS SimpleMAE: ``mask_ratio`` of the tubelets are hidden and the model reconstructs the clip. Metric: MSE on the
    hidden pixels; baseline: every hidden pixel painted with the mean colour of the visible tubelets. Writes
    ``<clip>_4ds_reconstruction.png/.mp4`` (input | what the model sees | prediction | baseline)."""
    start = time.perf_counter()
    writer = _Writer(output, clip.fps)
    config = model.config
    frames = to_video_tensor(clip.frames, config.image_size, config.num_frames)
    with torch.inference_mode():
        outputs = model(frames, generator=torch.Generator().manual_seed(seed))
    reconstruction = to_hwc(outputs.reconstruction[0])
    truth = to_hwc(frames[0])
    grid = [size // tube for size, tube in zip((config.num_frames, *config.image_size), config.tubelet_size)]
    hidden = tubelet_pixel_mask(outputs.mask[0], grid, config.tubelet_size)[: len(truth)]
    visible_mean = truth[~hidden].mean(0) if (~hidden).any() else np.full(3, 0.5, np.float32)
    baseline = np.where(hidden[..., None], visible_mean, truth)
    result = StepResult("masked_reconstruction", clip.name, description, "hidden-pixel MSE",
                        float(((reconstruction - truth)[hidden] ** 2).mean()),
                        "visible-mean-colour MSE", float(((baseline - truth)[hidden] ** 2).mean()),
                        lower_is_better=True)
    result.details = {"hidden_fraction": float(hidden.mean())}
    seen = np.where(hidden[..., None], 0.35, truth)
    title = _title("4DS masked reconstruction", clip, result)
    notes = [f"model: {description}",
             f"{hidden.mean():.0%} of the {'x'.join(map(str, config.tubelet_size))} tubelets hidden (dark grey); "
             "baseline: every hidden pixel gets the mean colour of the visible ones"]

    def picture(t):
        return labelled_picture([shown(image, clip) for image in (truth[t], seen[t], reconstruction[t], baseline[t])],
                                [f"ground truth: frame {t}", "input: visible tubelets", "prediction",
                                 "baseline: visible mean"], title=title, notes=notes)

    writer.png(f"{clip.name}_4ds_reconstruction.png", picture(int(np.argmin(hidden.mean(axis=(1, 2))))))
    writer.video(f"{clip.name}_4ds_reconstruction.mp4", [picture(t) for t in range(len(truth))])
    result.files, result.seconds = writer.files, time.perf_counter() - start
    return result


def rvm_hidden_pixels(model, sources: torch.Tensor, targets: torch.Tensor, seed: int):
    """Run RVM masked reconstruction on one clip and return, as (T, H, W, 3) / (T, H, W) numpy of the target frames:
    the reconstruction, the true pixels, the hidden-pixel mask and the last source frame (H, W, 3), cropped alike."""
    with torch.inference_mode():
        outputs = model(sources, targets, generator=torch.Generator().manual_seed(seed))
    reconstruction = to_hwc(outputs.reconstruction[0])
    truth = to_hwc(targets[0])[:, : reconstruction.shape[1], : reconstruction.shape[2]]
    patch = model.config.patch_size
    hidden = outputs.mask[0].cpu().numpy().repeat(patch, axis=1).repeat(patch, axis=2) > 0.5
    last_source = to_hwc(sources[0, -1:])[0][: truth.shape[1], : truth.shape[2]]
    return reconstruction, truth, hidden, last_source


# Step: label propagation -----------------------------------------------------------------------------------------------


def _mask_panel(frame: np.ndarray, mask: np.ndarray, colors: np.ndarray, min_side: int = 256) -> np.ndarray:
    """The frame in dimmed grey (so that coloured objects are not mistaken for masks) with each label in its colour."""
    image = upscale(np.asarray(frame, dtype=np.float32) / 255.0, min_side)
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    image = np.repeat((0.25 + 0.6 * grey)[..., None], 3, axis=-1)
    mask = upscale(mask, min_side)
    for label in np.unique(mask):
        if label:
            image = overlay_mask(image, mask == label, color=colors[(int(label) - 1) % len(colors)], alpha=0.7)
    return image


def propagation_resolution(model, clip_hw, tokens: int = DEMO_GRID_TOKENS) -> tuple[int, int]:
    """The processing size of :func:`label_propagation`: about ``tokens`` grid cells, multiples of the model's patch
    (4DS: the tubelet's spatial size), the clip's aspect ratio, never larger than the clip."""
    from rep4d.label_propagation import default_resolution

    config = model.config
    patch = getattr(config, "patch_size", None) or getattr(config, "tubelet_size", [1, 16, 16])[-1]
    patch = patch[-1] if isinstance(patch, list | tuple) else patch
    return default_resolution(clip_hw, int(patch), tokens)


def label_propagation(model, clip: DemoClip, first_mask: np.ndarray, output, name: str, description: str = "",
                      mask_names: dict | None = None, resolution=None) -> StepResult:
    """Carry the first-frame mask through the clip by feature affinity (:func:`rep4d.label_propagation.propagate_mask`).

    Metric (synthetic clip): DAVIS J&F against the true masks; baseline: the first-frame mask copied to every frame.
    Writes ``<clip>_<name>_label_propagation.png/.mp4`` (given first-frame mask | prediction | ground truth)."""
    from rep4d.label_propagation import propagate_mask

    start = time.perf_counter()
    writer = _Writer(output, clip.fps)
    resolution = resolution or propagation_resolution(model, clip.size)
    with torch.inference_mode():
        propagation = propagate_mask(model, clip.frames, first_mask, resolution=resolution)
    masks = propagation.masks.astype(np.int64)
    truth = None if clip.truth is None else clip.truth["segmentation"].astype(np.int64)
    if truth is not None:
        from rep4d.training.propagation_metrics import davis_jf

        value, baseline = davis_jf(truth, masks), davis_jf(truth, np.repeat(truth[:1], len(truth), 0))
    else:
        value = baseline = None
    result = StepResult(f"{name}_label_propagation", clip.name, description, "J&F", value, "copy-first-mask J&F",
                        baseline, lower_is_better=False)
    if truth is not None:
        result.other_baselines = {"empty-mask J&F": davis_jf(truth, np.zeros_like(truth))}
    foreground = float((masks[1:] > 0).mean())
    result.note = f"predicted foreground {foreground:.1%} of the pixels of frames 1..T-1"
    result.details = {"predicted_foreground": foreground, "given_foreground": float((first_mask > 0).mean()),
                      "processing_resolution": list(resolution)}
    if truth is not None:
        result.details["truth_foreground"] = float((truth[1:] > 0).mean())
        result.note += f" (ground truth {result.details['truth_foreground']:.1%})"
    labels = sorted(set(np.unique(first_mask).tolist()) - {0})
    colors = distinct_colors(max(labels + [1]))
    names = mask_names or {label: f"object {label}" for label in labels}
    legend = [("patch", colors[(label - 1) % len(colors)], names.get(label, f"label {label}")) for label in labels]
    step_title = STEP_TITLES.get(result.step, result.step)
    title = _title(step_title[0].upper() + step_title[1:], clip, result)
    notes = [f"model: {description}", f"frames in grey, masks in colour; features at {resolution[0]}x{resolution[1]}; "
             f"{result.note}; J&F: DAVIS region similarity and boundary accuracy (1 = perfect), frames 1..T-2"]
    given = _mask_panel(clip.frames[0], first_mask, colors)

    def picture(t):
        panels = [given, _mask_panel(clip.frames[t], masks[t], colors)]
        captions = ["input: frame 0 + given mask", f"prediction: frame {t}"]
        if truth is not None:
            panels.append(_mask_panel(clip.frames[t], truth[t], colors))
            captions.append(f"ground truth: frame {t}")
        return labelled_picture(panels, captions, title=title, legend=legend, notes=notes)

    writer.png(f"{clip.name}_{name}_label_propagation.png", picture(clip.num_frames // 2))
    writer.video(f"{clip.name}_{name}_label_propagation.mp4", [picture(t) for t in range(clip.num_frames)])
    result.files, result.seconds = writer.files, time.perf_counter() - start
    return result


# Step: RVM masked reconstruction ---------------------------------------------------------------------------------------


def rvm_reconstruction(model, clip: DemoClip, output, description: str = "", seed: int = 0) -> StepResult:
    """RVM reads the first half of the clip (source frames, recurrent) and reconstructs the second half (targets) from
    a few visible patches each. Metric: MSE on the hidden target patches; baseline: the last source frame copied.
    Writes ``<clip>_rvm_reconstruction.png/.mp4`` (last source frame | what the model sees | prediction | truth)."""
    start = time.perf_counter()
    writer = _Writer(output, clip.fps)
    config = model.config
    frames = to_video_tensor(clip.frames, config.image_size)
    split = max(1, frames.shape[1] // 2)
    sources, targets = frames[:, :split], frames[:, split:]
    patch = config.patch_size
    reconstruction, truth, hidden, last_source = rvm_hidden_pixels(model, sources, targets, seed)
    copy_error = ((last_source[None] - truth) ** 2)[hidden]
    result = StepResult("rvm_reconstruction", clip.name, description, "hidden-patch MSE",
                        float(((reconstruction - truth) ** 2)[hidden].mean()), "copy-last-source-frame MSE",
                        float(copy_error.mean()), lower_is_better=True)
    result.details = {"hidden_fraction": float(hidden.mean()), "source_frames": split}
    seen = np.where(hidden[..., None], 0.35, truth)
    title = _title("RVM masked reconstruction", clip, result)
    notes = [f"model: {description}", f"sources: frames 0..{split - 1}; targets: frames {split}..{frames.shape[1] - 1} "
             f"with {hidden.mean():.0%} of their {patch}x{patch} patches hidden (dark grey)"]

    def picture(t):
        return labelled_picture([shown(image, clip) for image in (last_source, seen[t], reconstruction[t], truth[t])],
                                [f"input: source frame {split - 1}", f"input: visible patches of frame {split + t}",
                                 "prediction", f"ground truth: frame {split + t}"], title=title, notes=notes)

    writer.png(f"{clip.name}_rvm_reconstruction.png", picture(len(truth) - 1))
    writer.video(f"{clip.name}_rvm_reconstruction.mp4", [picture(t) for t in range(len(truth))])
    result.files, result.seconds = writer.files, time.perf_counter() - start
    return result


# Step: point tracking --------------------------------------------------------------------------------------------------


def grid_queries(height: int, width: int, count: int = 4) -> np.ndarray:
    """(count*count, 3) first-frame (t, y, x) queries on a regular grid (pixel centres), for a clip without tracks."""
    ys = (np.arange(count) + 0.5) * height / count
    xs = (np.arange(count) + 0.5) * width / count
    y, x = np.meshgrid(np.floor(ys) + 0.5, np.floor(xs) + 0.5, indexing="ij")
    return np.stack([np.zeros(y.size), y.ravel(), x.ravel()], axis=1).astype(np.float32)


def tracking_scores(query_points, truth_tracks, truth_occluded, tracks, occluded, size) -> float:
    """TAP-Vid average Jaccard (``first`` queries) on the 256x256 raster, one clip: (N, 3), (N, T, 2), (N, T)..."""
    from rep4d.training.metrics import compute_tapvid_metrics, rescale_tracks

    metrics = compute_tapvid_metrics(query_points[None], truth_occluded[None], rescale_tracks(truth_tracks, size)[None],
                                     occluded[None], rescale_tracks(tracks, size)[None], query_mode="first")
    return float(metrics["average_jaccard"][0])


def point_tracking(model, clip: DemoClip, output, description: str = "") -> StepResult:
    """Track points from frame 0 with a point-tracking readout. Metric (synthetic clip): TAP-Vid average Jaccard;
    baseline: every point stays at its query position, always visible. Writes ``<clip>_point_tracks.png/.mp4``
    (input with the queries | prediction | ground truth)."""
    start = time.perf_counter()
    writer = _Writer(output, clip.fps)
    height, width = model.image_size
    num_frames = min(model.num_frames, clip.num_frames)
    frames = to_video_tensor(clip.frames, (height, width), model.num_frames)
    clip_h, clip_w = clip.size
    scale = np.array([1.0, height / clip_h, width / clip_w], dtype=np.float32)
    truth = clip.truth
    queries = (truth["query_points"] if truth is not None else grid_queries(clip_h, clip_w)) * scale
    with torch.inference_mode():
        outputs = model(frames, query_points=torch.from_numpy(np.ascontiguousarray(queries))[None])
    tracks = outputs.tracks[0].float().numpy()[:, :num_frames]  # (N, T, 2) x, y
    occluded = outputs.occluded[0].numpy()[:, :num_frames].astype(bool)
    if truth is not None:
        truth_tracks = truth["tracks"][:, :num_frames] * scale[[2, 1]]
        truth_occluded = truth["occluded"][:, :num_frames].astype(bool)
        still = np.repeat(queries[:, None, [2, 1]], num_frames, axis=1)
        value = tracking_scores(queries, truth_tracks, truth_occluded, tracks, occluded, (height, width))
        baseline = tracking_scores(queries, truth_tracks, truth_occluded, still, np.zeros_like(occluded),
                                   (height, width))
    else:
        truth_tracks = truth_occluded = None
        value = baseline = None
    result = StepResult("point_tracking", clip.name, description, "average Jaccard", value,
                        "stay-at-query average Jaccard", baseline, lower_is_better=False)
    display = to_hwc(frames[0])
    shown_h, shown_w = display_scale((height, width), clip.size)
    factor = np.array([shown_w / width, shown_h / height], dtype=np.float32)  # (x, y) model pixels -> picture
    colors = distinct_colors(len(tracks))
    legend = [("filled", (0.6, 0.6, 0.6), "prediction: point visible"),
              ("hollow", (0.6, 0.6, 0.6), "prediction: point occluded"),
              ("cross", (0.6, 0.6, 0.6), "ground truth (thin: occluded)"),
              ("line", (0.6, 0.6, 0.6), "path so far")]
    title = _title("Point tracking", clip, result)
    notes = [f"model: {description}", "one colour per track, queried in frame 0; TAP-Vid average Jaccard on the "
             "256x256 raster (1 = every point within 1 px and its visibility right)"]

    def picture(t):
        big = shown(display[t], clip)
        predicted = draw_trails(big, tracks[:, : t + 1] * factor, colors)
        panels = [draw_markers(shown(display[0], clip), queries[:, [2, 1]] * factor, colors, "filled"),
                  draw_markers(predicted, tracks[:, t] * factor, colors, "filled", visible=~occluded[:, t])]
        captions = ["input: frame 0 + queries", f"prediction: frame {t}"]
        if truth is not None:
            trails = draw_trails(big, truth_tracks[:, : t + 1] * factor, colors)
            panels.append(draw_markers(trails, truth_tracks[:, t] * factor, colors, "cross",
                                       visible=~truth_occluded[:, t]))
            captions.append(f"ground truth: frame {t}")
        shown_legend = legend if truth is not None else [legend[0], legend[1], legend[3]]
        return labelled_picture(panels, captions, title=title, legend=shown_legend, notes=notes)

    writer.png(f"{clip.name}_point_tracks.png", picture(num_frames - 1))
    writer.video(f"{clip.name}_point_tracks.mp4", [picture(t) for t in range(num_frames)])
    result.files, result.seconds = writer.files, time.perf_counter() - start
    return result


# Models ----------------------------------------------------------------------------------------------------------------


def random_description(model, zoo_name: str, origin: str) -> str:
    parameters = sum(p.numel() for p in model.parameters())
    return (f"RANDOMLY INITIALISED small {type(model).__name__} ({parameters:,} parameters, {origin}; "
            f"no model_zoo/{zoo_name})")


def load_demo_model(step: str, zoo):
    """(model in eval mode, description, from_zoo) for a demo step: its zoo folder if present, else the zoo model's
    config randomly initialised (:func:`rep4d.configuration.zoo_recipes.demo_fallback_config`); (None, None, False)
    for a readout step without a folder (:func:`run_demo` puts a random head on the reconstruction step's backbone)."""
    import rep4d.modeling

    zoo_model = DEMO_MODELS[step]
    model_class = getattr(rep4d.modeling, zoo_model.model_class)
    folder = zoo_model.folder(zoo)
    if folder is not None:
        return model_class.from_pretrained(folder).eval(), f"model_zoo/{zoo_model.name} ({ZOO_NOTE})", True
    config = demo_fallback_config(step)
    if config is None:
        return None, None, False
    model = model_class(config).eval()
    return model, random_description(model, zoo_model.name, f"config of the {zoo_model.name} recipe"), False


# The whole demo --------------------------------------------------------------------------------------------------------


STEP_TITLES = {
    "moog_next_frame": "MooG next-frame prediction",
    "masked_reconstruction": "4DS masked reconstruction",
    "4ds_student_label_propagation": "label propagation, 4DS distilled student",
    "rvm_label_propagation": "label propagation, RVM",
    "release_label_propagation": "label propagation, release",
    "rvm_reconstruction": "RVM masked reconstruction",
    "point_tracking": "point tracking",
}


def _release_model(name: str, progress: bool):
    """(model, description) of a downloaded release (``rep4d.releases.from_release``)."""
    from rep4d import releases

    model, _processor = releases.from_release(name, progress=progress)
    if not (hasattr(model, "get_video_features") or type(model).__name__ == "MooGForNextFramePrediction"):
        raise ValueError(f"release {name} loads a {type(model).__name__}, which serves no demo step: use a backbone "
                         "release (4ds-b-dist-e, 4ds-e, rvm-s, rvm-b, rvm-l, rvm-h, moog)")
    return model, f"release {name} (downloaded and converted by rep4d.releases)"


def run_demo(output="demo_output", num_frames: int = DEMO_NUM_FRAMES, resolution=DEMO_RESOLUTION, seed: int = 0,
             zoo=None, model_dir=None, release: str | None = None, video=DEMO_VIDEO,
             synthetic_fps: float = DEFAULT_FPS, video_frames: int | None = None, progress: bool = True) -> dict:
    """Run every step on the synthetic clip and (unless ``video`` is None) on a real video; write the pictures,
    videos, ``summary.md`` and ``summary.json`` into ``output`` and return the summary.

    Args:
        output: folder for the results (files are written to a temporary folder first and moved in when complete).
        num_frames / resolution / seed: the synthetic clip; ``synthetic_fps`` the frame rate of its videos (a real
            video's keep its own).
        zoo: folder of the embedded demo models (default ``rep4d.model_zoo``); a missing model folder makes its step
            use a small randomly initialised model, said in the summary.
        model_dir: a converted 4DS folder (``rep4d convert``) used for the 4DS reconstruction and propagation steps.
        release: a release name (``rep4d download --list``): its model replaces the embedded one of the steps it can
            serve (next-frame prediction for MooG, label propagation for a backbone); downloaded on first use.
        video: the real video (default: the shipped Big Buck Bunny clip); None skips it. ``video_frames``: read only
            its first frames (default all).
    """
    from tqdm.auto import tqdm

    from rep4d.model_zoo import ZOO_DIR

    zoo = Path(zoo) if zoo is not None else ZOO_DIR
    output = Path(output)
    torch.manual_seed(seed)
    clips = [synthetic_clip(num_frames, resolution, seed)]
    clips[0].fps = float(synthetic_fps)
    if video is not None:
        clips.append(real_clip(video, video_frames))
    models, descriptions, random_models = {}, {}, []

    def model_for(step):
        if step not in models:
            model, text, from_zoo = load_demo_model(step, zoo)
            models[step], descriptions[step] = model, text
            if model is not None and not from_zoo:
                random_models.append(step)
        return models[step]

    release_model = release_text = None
    if release:
        release_model, release_text = _release_model(release, progress)
    if model_dir:
        from rep4d.modeling import FourDSForPreTraining

        if not (Path(model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"--model: {model_dir} is not a converted 4DS folder (no config.json); convert a "
                                    "release with `rep4d convert NAME`, or use --release NAME")

        models["4ds"] = FourDSForPreTraining.from_pretrained(model_dir).eval()
        descriptions["4ds"] = f"{model_dir} (converted checkpoint; the pixel decoder is not released: random)"
        models["4ds_distilled"] = models["4ds"].fourds
        descriptions["4ds_distilled"] = f"{model_dir} (converted 4DS checkpoint)"

    results: list[StepResult] = []
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))  # same file system
    total = 6 * len(clips)
    bar = tqdm(total=total, desc="demo", unit="step", disable=not progress)
    try:
        for clip in clips:
            def advance(label, clip=clip):
                bar.set_description(f"demo: {label} ({clip.name})")
                bar.update(1)

            moog = model_for("moog")
            moog_text = descriptions["moog"]
            if release_model is not None and hasattr(release_model, "config") and \
                    getattr(release_model.config, "model_type", "") == "moog" and \
                    type(release_model).__name__ == "MooGForNextFramePrediction":
                moog, moog_text = release_model, release_text
            results.append(moog_next_frame(moog, clip, staging, moog_text, seed))
            advance("MooG next-frame")
            results.append(masked_reconstruction(model_for("4ds"), clip, staging, descriptions["4ds"], seed))
            advance("4DS reconstruction")
            first_mask = (clip.truth["segmentation"][0].astype(np.int64) if clip.truth is not None
                          else grass_mask(clip.frames[0]))
            names = None if clip.truth is not None else {1: f"grass (colour threshold, frame 0: {GRASS_RULE})"}
            student = model_for("4ds_distilled")
            results.append(label_propagation(student, clip, first_mask, staging, "4ds_student",
                                             descriptions["4ds_distilled"], names))
            advance("4DS student propagation")
            rvm = model_for("rvm")
            results.append(label_propagation(rvm, clip, first_mask, staging, "rvm",
                                             descriptions["rvm"], names))
            if release_model is not None and hasattr(release_model, "get_video_features"):
                results.append(label_propagation(release_model, clip, first_mask, staging, "release", release_text,
                                                 names))
            advance("RVM propagation")
            results.append(rvm_reconstruction(rvm, clip, staging, descriptions["rvm"], seed))
            advance("RVM reconstruction")
            tracker = model_for("point_tracking")
            if tracker is None:
                tracker = _random_tracker(models, descriptions, random_models)
            results.append(point_tracking(tracker, clip, staging, descriptions["point_tracking"]))
            advance("point tracking")
        bar.close()
        summary = _summary(clips, results, descriptions, random_models, zoo, release_text)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2))
        (staging / "summary.md").write_text(summary_markdown(summary))
        output.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            os.replace(path, output / path.name)
    finally:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _random_tracker(models, descriptions, random_models):
    """No trained readout: a random one on the 4DS backbone of the reconstruction step (same weights)."""
    from rep4d.configuration import ReadoutConfig
    from rep4d.modeling import ReadoutForPointTracking

    fourds = models["4ds"]
    zoo_name = DEMO_MODELS["point_tracking"].name
    config = ReadoutConfig(task="points", backbone_config=fourds.config.to_dict(), **demo_fallback_readout())
    tracker = ReadoutForPointTracking(config).eval()
    tracker.backbone.model.load_state_dict(fourds.fourds.state_dict())
    descriptions["point_tracking"] = (
        random_description(tracker.readout, zoo_name, f"readout width and heads of the {zoo_name} recipe")
        + f" on the 4DS backbone of the reconstruction step ({descriptions['4ds']})")
    random_models.append("point_tracking")
    models["point_tracking"] = tracker
    return tracker


def _summary(clips, results, descriptions, random_models, zoo, release_text) -> dict:
    below = sorted({STEP_TITLES.get(r.step, r.step) for r in results if r.verdict == "worse"})
    note = ("Models: embedded demo models from model_zoo/ (" + ZOO_NOTE + ")" if not random_models else
            f"RANDOMLY INITIALISED models for {', '.join(random_models)} (no model_zoo/ folder for them; small "
            "configs defined in code): their outputs show the pipeline runs, not what the methods can do")
    note += (". The embedded models are tiny and trained for minutes on synthetic data: "
             "`rep4d demo --release 4ds-b-dist-e` runs the real released 4DS model.")
    if "4ds" in descriptions and not descriptions["4ds"].startswith(("model_zoo/", "RANDOMLY")):
        note += f" 4DS steps: {descriptions['4ds']}."
    if release_text:
        note += f" This run used {release_text} for the steps it can serve."
    if below:
        note += f" Below baseline: {'; '.join(below)}."
    return {
        "note": note,
        "clips": {clip.name: {"description": clip.description, "frames": clip.num_frames, "size": list(clip.size),
                              "fps": clip.fps} for clip in clips},
        "models": descriptions,
        "random_models": random_models,
        "zoo": str(zoo),
        "steps": [result.to_dict() for result in results],
        "results": {f"{r.clip}/{r.step}": {"metric": r.metric, "value": r.value, "baseline": r.baseline,
                                           "baseline_value": r.baseline_value, "verdict": r.verdict}
                    for r in results},
        "files": [name for r in results for name in r.files] + ["summary.json", "summary.md"],
        "seconds": {f"{r.clip}/{r.step}": round(r.seconds, 2) for r in results},
    }


def _number(value) -> str:
    return "" if value is None else f"{value:.4g}"


def summary_markdown(summary: dict) -> str:
    """``summary.md``: the note, the verdict table, then every step's picture inline and its video linked."""
    lines = ["# rep4d demo", "", summary["note"], ""]
    lines += [f"- **{name} clip**: {clip['description']}" for name, clip in summary["clips"].items()]
    lines += ["", "## Verdicts", "", "| clip | step | metric | value | trivial baseline | baseline value | verdict |",
              "|---|---|---|---|---|---|---|"]
    for step in summary["steps"]:
        verdict = step["verdict"] + (f" ({BELOW_BASELINE})" if step["verdict"] == "worse" else "")
        if step["verdict"] == "n/a":
            verdict = "n/a (no ground truth)"
        others = "".join(f"; {name}" for name in step["other_baselines"])
        other_values = "".join(f"; {_number(value)}" for value in step["other_baselines"].values())
        lines.append(f"| {step['clip']} | {STEP_TITLES.get(step['step'], step['step'])} | {step['metric']} | "
                     f"{_number(step['value'])} | {step['baseline']}{others} | {_number(step['baseline_value'])}"
                     f"{other_values} | **{verdict}** |")
    lines += ["", "## Models", ""] + [f"- {step}: {text}" for step, text in summary["models"].items()]
    for step in summary["steps"]:
        lines += ["", f"## {STEP_TITLES.get(step['step'], step['step'])} ({step['clip']} clip)", ""]
        if step["note"]:
            lines += [step["note"], ""]
        for name in step["files"]:
            if name.endswith(".png"):
                lines.append(f"![{step['step']} on the {step['clip']} clip]({name})")
            else:
                lines.append(f"Video: [{name}]({name})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def verdict_table(summary: dict) -> str:
    """A plain-text table of the verdicts (what ``rep4d demo`` prints)."""
    rows = [("clip", "step", "metric", "value", "baseline", "verdict")]
    for step in summary["steps"]:
        verdict = step["verdict"] + (f" ({BELOW_BASELINE})" if step["verdict"] == "worse" else "")
        baseline = "" if step["baseline_value"] is None else f"{_number(step['baseline_value'])} ({step['baseline']})"
        baseline += "".join(f"; {_number(value)} ({name})" for name, value in step["other_baselines"].items())
        rows.append((step["clip"], STEP_TITLES.get(step["step"], step["step"]), step["metric"],
                     _number(step["value"]), baseline, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


__all__ = [
    "DemoClip",
    "StepResult",
    "synthetic_clip",
    "real_clip",
    "grass_mask",
    "moog_next_frame",
    "masked_reconstruction",
    "label_propagation",
    "rvm_reconstruction",
    "point_tracking",
    "run_demo",
    "summary_markdown",
    "verdict_table",
]
