"""Validation of the ``pixel_values`` every rep4d model takes: one clear error for every wrong input."""

from __future__ import annotations

import torch


def check_video_input(pixel_values: torch.Tensor, num_channels: int, name: str = "pixel_values") -> None:
    """Refuse, with a one-line ValueError, inputs that are not a non-empty (B, T, C, H, W) floating tensor with
    ``num_channels`` channels (arrays, integer dtypes such as uint8/uint16, grayscale (T, H, W) clips, empty clips)."""
    if not isinstance(pixel_values, torch.Tensor):
        shape = getattr(pixel_values, "shape", None)
        given = f"a {type(pixel_values).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (batch, frames, channels, height, width), got {given}; "
            "use the model's video processor to turn frames or arrays into pixel_values"
        )
    if pixel_values.ndim != 5:
        raise ValueError(
            f"{name} must have shape (batch, frames, channels, height, width), got {tuple(pixel_values.shape)}"
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor with values in [0, 1], got dtype {pixel_values.dtype}; "
            "use the model's video processor (or divide uint8 frames by 255)"
        )
    if pixel_values.shape[2] != num_channels:
        raise ValueError(
            f"{name} must have {num_channels} channels in dimension 2 (batch, frames, channels, height, width), "
            f"got shape {tuple(pixel_values.shape)}"
        )
    if 0 in pixel_values.shape:
        raise ValueError(f"{name} is empty: shape {tuple(pixel_values.shape)} (batch, frames, channels, height, width)")


__all__ = ["check_video_input"]
