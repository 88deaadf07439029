"""The Omnivorous DINOv2 demo (``colabs/omnivorous_dino_inference_demo.ipynb``) on transformers' own model.

An RGB image and an auxiliary image of the same scene (a colourised depth map, an X-ray, ...) go through the same
encoder; the demo reports how well their dense patch features align (mean per-patch cosine) and shows a PCA picture
of each image's patch features. Spec omnivorous §2.2 (pre-processing) and §2.4 (score, PCA).

* :func:`preprocess_image`: the notebook's pre-processing bit for bit (PIL bicubic resize to 224x224, aspect ratio
  not kept, no crop, ImageNet mean/std in float64, then float32). The notebook does **no** colourisation: the
  auxiliary image must already be an 8-bit RGB picture (the released depth asset is coloured with matplotlib's
  cividis map, spec §2.3).
* :func:`dense_features`, :func:`alignment_score`, :func:`pca_image`: the notebook's ``get_features_and_score`` and
  ``visualize_pca``, for any token grid.
* :func:`run_demo` and :func:`render_demo_picture`: scores and the labelled picture of ``rep4d omnivorous``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEMO_IMAGE_SIZE = 224
PANEL_SIZE = 256


def _as_uint8_rgb(image) -> np.ndarray:
    """A path, PIL image or (H, W, 3) uint8 array -> (H, W, 3) uint8 RGB array."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        with Image.open(path) as opened:
            image = opened.convert("RGB") if opened.mode != "RGB" else opened.copy()
    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB") if image.mode != "RGB" else image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected an 8-bit RGB image (H, W, 3) uint8, got {array.shape} {array.dtype}")
    return array


def resize_image(image, size: int | tuple[int, int] = DEMO_IMAGE_SIZE) -> np.ndarray:
    """The notebook's ``Image.fromarray(u8).resize((W, H))`` (PIL's default bicubic): (H, W, 3) uint8."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    return np.array(Image.fromarray(_as_uint8_rgb(image)).resize((int(width), int(height))))


def normalize_image(resized_u8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, H, W, 3) float32 model input, with the notebook's arithmetic (float32 /255, then
    float64 ImageNet normalisation, then float32), so the bytes match the notebook's exactly."""
    resized_u8 = _as_uint8_rgb(resized_u8)
    scaled = resized_u8.astype(np.float32) / 255.0
    normalised = (scaled - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return normalised[None].astype(np.float32)


def preprocess_image(image, size: int | tuple[int, int] = DEMO_IMAGE_SIZE) -> np.ndarray:
    """Path / PIL image / uint8 array -> the notebook's (1, H, W, 3) float32 NHWC model input (224x224 default)."""
    return normalize_image(resize_image(image, size))


def to_pixel_values(nhwc: np.ndarray):
    """(B, H, W, 3) float32 -> (B, 3, H, W) torch tensor for transformers."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(nhwc, np.float32).transpose(0, 3, 1, 2)))


def l2_normalize(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``x / max(||x||_2, eps)`` over the last axis (the notebook's ``l2_normalize``)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


def dense_features(model, pixel_values) -> np.ndarray:
    """The demo's dense features: ``last_hidden_state[:, 1:]`` (class token dropped), (B, h*w, D) float32 NumPy.

    Works for any ``Dinov2WithRegistersModel`` (registers, if a config has any, are dropped too)."""
    import torch

    if pixel_values.ndim != 4 or pixel_values.shape[1] != model.config.num_channels:
        raise ValueError(f"expected pixel_values (B, {model.config.num_channels}, H, W), got {tuple(pixel_values.shape)}")
    with torch.no_grad():
        tokens = model(pixel_values=pixel_values.to(model.device, model.dtype)).last_hidden_state
    skip = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
    return tokens[:, skip:].float().cpu().numpy()


def alignment_score(rgb_dense: np.ndarray, aux_dense: np.ndarray) -> float:
    """Mean over patches of the cosine between RGB and auxiliary patch features (batch element 0 if batched):
    the notebook's ``get_features_and_score`` score. 1 = perfectly aligned, 0 = orthogonal."""
    rgb = np.asarray(rgb_dense, np.float32)
    aux = np.asarray(aux_dense, np.float32)
    rgb, aux = (rgb[0], aux[0]) if rgb.ndim == 3 else (rgb, aux)
    if rgb.shape != aux.shape or rgb.ndim != 2:
        raise ValueError(f"expected two (N, D) or (B, N, D) feature arrays of one shape, got {rgb.shape} and {aux.shape}")
    return float(np.mean(np.sum(l2_normalize(rgb) * l2_normalize(aux), axis=-1)))


def pca_image(dense: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The notebook's ``visualize_pca``: the first 3 principal components of the patch features, each min-max
    scaled to [0, 1], as an (h, w, 3) image. SVD signs are arbitrary: a channel may come out as ``1 - p``."""
    x = np.asarray(dense, np.float32)
    x = x[0] if x.ndim == 3 else x
    height, width = grid
    if x.ndim != 2 or x.shape[0] != height * width:
        raise ValueError(f"expected (N, D) patch features with N = {height}*{width}, got {x.shape}")
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    components = min(3, s.shape[0])
    projected = u[:, :components] * s[:components]
    if components < 3:
        projected = np.concatenate([projected, np.zeros((projected.shape[0], 3 - components), projected.dtype)], 1)
    low, high = projected.min(axis=0), projected.max(axis=0)
    projected = (projected - low) / (high - low + 1e-8)
    return projected.reshape(height, width, 3)


def token_grid(model, pixel_values) -> tuple[int, int]:
    """(h, w) token grid of ``pixel_values`` for this model (VALID patching: remainders dropped)."""
    patch = model.config.patch_size
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    return int(pixel_values.shape[-2]) // ph, int(pixel_values.shape[-1]) // pw


@dataclass
class DemoResult:
    """Per model (``role``): the alignment score and the PCA images of the RGB and auxiliary inputs."""

    rgb_image: np.ndarray  # (224, 224, 3) uint8, what the model saw
    aux_image: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)
    rgb_pca: dict[str, np.ndarray] = field(default_factory=dict)  # role -> (h, w, 3) in [0, 1]
    aux_pca: dict[str, np.ndarray] = field(default_factory=dict)


def run_demo(models: dict, rgb, aux, image_size: int = DEMO_IMAGE_SIZE) -> DemoResult:
    """The notebook's ``run_demo`` for each ``{role: model}`` (e.g. ``{"teacher": ..., "student": ...}``)."""
    rgb_u8, aux_u8 = resize_image(rgb, image_size), resize_image(aux, image_size)
    rgb_x, aux_x = to_pixel_values(normalize_image(rgb_u8)), to_pixel_values(normalize_image(aux_u8))
    result = DemoResult(rgb_u8, aux_u8)
    for role, model in models.items():
        grid = token_grid(model, rgb_x)
        rgb_dense, aux_dense = dense_features(model, rgb_x), dense_features(model, aux_x)
        result.scores[role] = alignment_score(rgb_dense, aux_dense)
        result.rgb_pca[role] = pca_image(rgb_dense, grid)
        result.aux_pca[role] = pca_image(aux_dense, grid)
    return result


def _panel(image: np.ndarray, size: int):
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array).resize((size, size), Image.NEAREST if array.shape[0] < size else Image.BICUBIC)


def render_demo_picture(result: DemoResult, panel_size: int = PANEL_SIZE):
    """A labelled PIL picture: row 1 "RGB input" | "auxiliary input"; one row per model "{role} PCA (RGB)" |
    "{role} PCA (auxiliary)"; the scores in the title. Panels are ``panel_size`` pixels (at least 256)."""
    from PIL import Image, ImageDraw, ImageFont

    panel_size = max(int(panel_size), PANEL_SIZE)
    font = ImageFont.load_default(size=max(14, panel_size // 16))
    label_h, margin = panel_size // 8, 8
    title = "alignment score (mean patch cosine RGB vs auxiliary): " + ", ".join(
        f"{role} {score:.4f}" for role, score in result.scores.items()
    )
    rows = [[("RGB input", result.rgb_image), ("auxiliary input", result.aux_image)]]
    for role in result.scores:
        rows.append([(f"{role} PCA (RGB)", result.rgb_pca[role]), (f"{role} PCA (auxiliary)", result.aux_pca[role])])
    title_h = label_h + margin
    width = 2 * panel_size + 3 * margin
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(width, int(draw_probe.textlength(title, font=font)) + 2 * margin)
    height = title_h + len(rows) * (label_h + panel_size + margin) + margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin // 2), title, fill="black", font=font)
    for r, row in enumerate(rows):
        top = title_h + r * (label_h + panel_size + margin)
        for c, (label, image) in enumerate(row):
            left = margin + c * (panel_size + margin)
            draw.text((left, top + 2), label, fill="black", font=font)
            canvas.paste(_panel(image, panel_size), (left, top + label_h))
    return canvas


def save_picture(picture, path: str | os.PathLike) -> Path:
    """Write a PIL picture atomically (temporary file in the same folder, then rename)."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix or ".png"
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        picture.save(tmp, format=None if path.suffix else "PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = [
    "DemoResult", "alignment_score", "dense_features", "l2_normalize", "normalize_image", "pca_image",
    "preprocess_image", "render_demo_picture", "resize_image", "run_demo", "save_picture", "to_pixel_values",
    "token_grid",
]
