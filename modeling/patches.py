"""Rearranging videos into flattened 3D patches and back (the reference readouts' and SimpleMAE's pixel layout)."""

from __future__ import annotations

import torch


def patches_to_video(logits: torch.Tensor, output_shape, patch_size) -> torch.Tensor:
    """(B, n0*n1*n2, p0*p1*p2*c) -> (B, T, H, W, c): the reference readout's pixel rearrangement."""
    frames, height, width = output_shape[:3]
    channels = output_shape[3] if len(output_shape) > 3 else 1
    p0, p1, p2 = patch_size
    if frames % p0 or height % p1 or width % p2:
        raise ValueError(f"output shape {tuple(output_shape)} is not divisible by the decoding patch {tuple(patch_size)}")
    n0, n1, n2 = frames // p0, height // p1, width // p2
    batch = logits.shape[0]
    x = logits.reshape(batch, n0, n1, n2, p0, p1, p2, channels)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch, frames, height, width, channels)


def video_to_patches(video: torch.Tensor, patch_size) -> torch.Tensor:
    """Inverse of :func:`patches_to_video`: (B, T, H, W, c) -> (B, n0*n1*n2, p0*p1*p2*c)."""
    batch, frames, height, width, channels = video.shape
    p0, p1, p2 = patch_size
    x = video.reshape(batch, frames // p0, p0, height // p1, p1, width // p2, p2, channels)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, -1, p0 * p1 * p2 * channels)


__all__ = ["patches_to_video", "video_to_patches"]
