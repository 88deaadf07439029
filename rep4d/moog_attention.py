"""Pictures of what MooG's off-the-grid tokens attend to (paper figures 4 and 7).

The pixel decoder of :class:`MooGForNextFramePrediction` queries every pixel position against the K state tokens.
Its attention weights, averaged over heads, give for each frame a (H, W, K) map: how much each pixel reads from
each token. Two renderings:

* ``token_attention_frames``: the attention map of chosen tokens over time, as heat maps blended over the frames
  (one panel per token, side by side): a token that tracks a scene element follows it.
* ``argmax_token_frames``: every pixel coloured by the token it attends to most (a fixed colour per token), which
  shows the tokens' segmentation of the scene and how it moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rep4d.visualization import colormap, distinct_colors, write_video


def decoder_attention_maps(
    model,
    pixel_values: torch.Tensor,
    layer: int = -1,
    chunk_size: int | None = 4096,
    return_state: bool = False,
    **forward_kwargs,
):
    """(B, T, H, W, K) head-averaged decoder attention of a :class:`MooGForNextFramePrediction` at full resolution.

    The model is switched to eager attention for the call (only eager attention returns weights) and restored.
    ``forward_kwargs`` go to the model (``state``, ``generator``, ...); with ``return_state`` the final state is
    returned too, to continue the video chunk by chunk.
    """
    previous = getattr(model.config, "_attn_implementation", None) or "eager"
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            outputs = model(
                pixel_values,
                subsample_factor=1,
                output_attentions=True,
                return_loss=False,
                decoder_chunk_size=chunk_size,
                **forward_kwargs,
            )
    finally:
        model.set_attn_implementation(previous)
    weights = outputs.decoder_attentions[layer].mean(dim=2)  # (B, T, H*W, K)
    batch, frames, _, height, width = pixel_values.shape
    maps = weights.reshape(batch, frames, height, width, -1).float().cpu().numpy()
    return (maps, outputs.final_state) if return_state else maps


def token_attention_frames(frames, attention: np.ndarray, tokens, alpha: float = 0.6) -> np.ndarray:
    """(T, H, W, 3) frames in [0, 1] + (T, H, W, K) attention -> (T, H, len(tokens) * W, 3) heat-map panels.

    Each token's map is normalised by its maximum over the whole clip, so its strength is comparable across time.
    """
    frames = np.asarray(frames, dtype=np.float32)
    attention = np.asarray(attention, dtype=np.float32)
    if frames.shape[:3] != attention.shape[:3]:
        raise ValueError(f"frames {frames.shape} and attention {attention.shape} must share (T, H, W)")
    tokens = list(tokens)
    if not tokens or min(tokens) < 0 or max(tokens) >= attention.shape[-1]:
        raise ValueError(f"tokens must be indices in [0, {attention.shape[-1]}), got {tokens}")
    panels = []
    for token in tokens:
        heat = attention[..., token] / max(float(attention[..., token].max()), 1e-12)
        panels.append(frames * (1 - alpha) + colormap(heat, 0.0, 1.0) * alpha)
    return np.concatenate(panels, axis=2)


def argmax_token_frames(frames, attention: np.ndarray, alpha: float = 0.65, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) frames + (T, H, W, K) attention -> frames with each pixel coloured by its arg-max token."""
    frames = np.asarray(frames, dtype=np.float32)
    attention = np.asarray(attention)
    if frames.shape[:3] != attention.shape[:3]:
        raise ValueError(f"frames {frames.shape} and attention {attention.shape} must share (T, H, W)")
    colors = distinct_colors(attention.shape[-1], seed=seed)
    return frames * (1 - alpha) + colors[attention.argmax(-1)] * alpha


def write_attention_video(
    path: str | os.PathLike,
    frames,
    attention: np.ndarray,
    tokens=None,
    mode: str = "both",
    fps: float = 8.0,
) -> Path:
    """Write the renderings as .mp4 / .webm / .gif: ``mode`` is ``tokens``, ``argmax`` or ``both`` (side by side,
    with the input frames first)."""
    frames = np.asarray(frames, dtype=np.float32)
    if mode not in ("tokens", "argmax", "both"):
        raise ValueError(f"mode must be 'tokens', 'argmax' or 'both', got {mode!r}")
    if tokens is None:
        # The tokens with the largest total attention: the ones that explain most of the picture.
        tokens = np.argsort(-attention.sum(axis=(0, 1, 2)))[:3].tolist()
    parts = [frames]
    if mode in ("argmax", "both"):
        parts.append(argmax_token_frames(frames, attention))
    if mode in ("tokens", "both"):
        parts.append(token_attention_frames(frames, attention, tokens))
    return write_video(path, np.concatenate(parts, axis=2), fps=fps)


def attention_pictures(frames, attention: np.ndarray, tokens=None, title: str = "MooG token attention",
                       min_side: int = 256, display_hw=None) -> list[np.ndarray]:
    """Labelled pictures, one per frame (uint8 (H', W', 3)): the input frame, every pixel coloured by the token it
    attends to most, and the heat maps of the ``tokens`` (default: the 3 with the largest total attention), each panel
    enlarged (nearest) to at least ``min_side`` pixels, with a colour bar and a legend.

    Args:
        frames: (T, H, W, 3) float frames in [0, 1] (the model's input).
        attention: (T, H, W, K) decoder attention (:func:`decoder_attention_maps` of one video).
        display_hw: optional (height, width) every panel is resized to (nearest), e.g. to restore the source video's
            aspect ratio after the model's square input.
    """
    from PIL import Image

    from rep4d.visualization import labelled_picture, to_uint8

    def resized(image):
        if display_hw is None:
            return image
        return np.asarray(Image.fromarray(to_uint8(image)).resize(tuple(display_hw)[::-1], Image.Resampling.NEAREST))

    frames = np.asarray(frames, dtype=np.float32)
    attention = np.asarray(attention, dtype=np.float32)
    if frames.shape[:3] != attention.shape[:3]:
        raise ValueError(f"frames {frames.shape} and attention {attention.shape} must share (T, H, W)")
    if tokens is None:
        tokens = np.argsort(-attention.sum(axis=(0, 1, 2)))[:3].tolist()
    argmax = argmax_token_frames(frames, attention)
    heat, ranges = [], []
    for token in tokens:
        # Stretched from the token's weakest to its strongest pixel over the clip: a small model's attention is
        # nearly uniform, and divided by its maximum alone it would look flat.
        weights = attention[..., token]
        low, high = (float(value) for value in np.percentile(weights, [1, 99]))
        ranges.append((low, high))
        stretched = (weights - low) / max(high - low, 1e-12)
        heat.append(frames * 0.15 + colormap(stretched, 0.0, 1.0) * 0.85)
    count = attention.shape[-1]
    notes = [f"MooG's pixel decoder reads every pixel from {count} off-the-grid latent tokens (head-averaged "
             "attention of its last layer). Second panel: each pixel coloured by the token it reads most; a token "
             "that follows an object keeps its colour on it.",
             "Heat maps: one token's attention weight, stretched from its 1st percentile over the clip (0) to its 99th "
             "(1); the captions give that range of the raw weights (1/K would be uniform: "
             f"1/{count} = {1 / count:.3f})."]
    pictures = []
    for t in range(len(frames)):
        panels = [resized(image) for image in [frames[t], argmax[t]] + [panel[t] for panel in heat]]
        captions = [f"input: frame {t}", "token read most (colour = token)"] + [f"token {k}: weights {low:.3f}-{high:.3f}" for k, (low, high) in zip(tokens, ranges)]
        pictures.append(labelled_picture(panels, captions, title=title, notes=notes, min_side=min_side,
                                         colorbars=[dict(vmin=0.0, vmax=1.0, label="stretched")]))
    return pictures


__all__ = ["decoder_attention_maps", "token_attention_frames", "argmax_token_frames", "write_attention_video",
           "attention_pictures"]
