"""Resampling with ``jax.image.resize``'s cubic kernel, bit-exact with the JAX reference (x64 disabled).

One implementation for every model: :func:`cubic_resize_matrix` (the per-axis weights), :func:`cubic_resize` (any
axes of a tensor: 4DS position embeddings) and :func:`resample_frames` (the time axis of (B, t, N, C) features: 4DS
readout features and the backbone adapters). Not the same as ``F.interpolate(mode="bicubic")``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .cpu_fast_paths import emulated_cpu_dtype


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 on |x|, in the operation order of jax.image's ``_keys_cubic_kernel``."""
    out = ((np.float32(1.5) * x - np.float32(2.5)) * x) * x + np.float32(1.0)
    out = np.where(x >= 1.0, ((np.float32(-0.5) * x + np.float32(2.5)) * x - np.float32(4.0)) * x + np.float32(2.0), out)
    return np.where(x >= 2.0, np.float32(0.0), out).astype(np.float32)


@lru_cache(maxsize=256)
def _cubic_resize_matrix_np(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    # float32 throughout, as jax.image.resize's compute_weight_mat (x64 disabled): this matters at the 1e-6 level.
    scale = np.float32(out_size / in_size)
    inv_scale = np.float32(1.0) / scale
    widening = np.maximum(inv_scale, np.float32(1.0)) if antialias else np.float32(1.0)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale - np.float32(0.5)
    taps = np.arange(in_size, dtype=np.float32)
    weights = _keys_cubic(np.abs(centres[:, None] - taps[None, :]) / widening)
    totals = weights.sum(axis=1, keepdims=True, dtype=np.float32)
    # Taps that fall outside the input do not exist; the remaining weights are renormalised (no edge padding).
    valid = np.abs(totals) > 1000 * np.finfo(np.float32).eps
    weights = np.where(valid, weights / np.where(totals != 0, totals, np.float32(1.0)), np.float32(0.0))
    inside = (centres >= -0.5) & (centres <= in_size - 0.5)
    weights[~inside] = 0
    return weights.astype(np.float32)


def cubic_resize_matrix(in_size: int, out_size: int, antialias: bool = True) -> torch.Tensor:
    """The (out_size, in_size) matrix of ``jax.image.resize(..., method="cubic", antialias=antialias)`` on one axis.

    Keys cubic kernel with a = -0.5, half-pixel centres, out-of-range taps dropped and rows renormalised; with
    ``antialias`` the kernel is widened by the downsampling factor. Not the same as ``F.interpolate("bicubic")``.
    """
    return torch.from_numpy(_cubic_resize_matrix_np(int(in_size), int(out_size), bool(antialias)).copy())


def cubic_resize(x: torch.Tensor, sizes: dict[int, int], antialias: bool = True) -> torch.Tensor:
    """Separable cubic resize of the axes in ``sizes`` ({axis: new_size}), as ``jax.image.resize`` does."""
    for axis, new_size in sizes.items():
        axis = axis % x.ndim
        if x.shape[axis] == new_size:
            continue
        matrix = cubic_resize_matrix(x.shape[axis], new_size, antialias).to(device=x.device, dtype=x.dtype)
        x = torch.movedim(torch.tensordot(matrix, torch.movedim(x, axis, 0), dims=([1], [0])), 0, axis)
    return x


def resample_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, t, N, C) -> (B, num_frames, N, C), resampled in time with ``jax.image.resize``'s antialiased cubic kernel
    (how the 4DS reference brings tubelet-rate features to the frame rate for its readouts)."""
    if features.shape[1] == num_frames:
        return features
    weights = cubic_resize_matrix(features.shape[1], num_frames).to(device=features.device)
    emulated = emulated_cpu_dtype(features, weights)  # the precision policy: no emulated bf16 matmul on this CPU
    if emulated is not None:
        with torch.autocast("cpu", enabled=False):
            return torch.einsum("oi,bisd->bosd", weights, features.float()).to(emulated)
    return torch.einsum("oi,bisd->bosd", weights.to(features.dtype), features)


__all__ = ["cubic_resize", "cubic_resize_matrix", "resample_frames"]
