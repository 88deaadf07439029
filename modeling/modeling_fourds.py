"""PyTorch 4DS: ViT video backbones on 3D tubelets ("Scaling 4D Representations", arXiv 2412.15212).

A port of the DeepMind reference (representations4d ``models/model.py`` and ``models/readout.py``). Numerics that
matter for parity with the released checkpoints: LayerNorm eps 1e-6, tanh GELU, no final norm, the reference's
feature list (``[tokens, tokens, out_0, ..., out_{L-2}]``) for readout selection, and the exact cubic kernel of
``jax.image.resize`` for the temporal resampling of readout features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput, can_return_tuple

from ..configuration.configuration_fourds import FourDSConfig
from .attention_readout import AttentionReadout
from .cpu_fast_paths import Linear, linear
from .layers import PreNormViTLayer
from .losses import depth_loss
from .outputs import VideoFeaturesOutput
from .patches import patches_to_video, video_to_patches
from .pretrained import Rep4DPreTrainedModel, trunc_normal_init_
from .resampling import cubic_resize, resample_frames
from .video_inputs import check_video_input


def readout_layer_index(num_features: int, readout_depth: float) -> int:
    """Index into the reference feature list: ``int(len(features) * readout_depth) - 1`` in double arithmetic."""
    index = int(num_features * float(readout_depth)) - 1
    if not 0 <= index < num_features:
        raise ValueError(
            f"readout_depth={readout_depth} selects feature {index}, outside the {num_features} available features"
        )
    return index


def readout_hidden_state_index(num_hidden_layers: int, readout_depth: float) -> int:
    """Index into ``hidden_states`` (embeddings first) of the reference feature at ``readout_depth`` of
    ``num_hidden_layers`` blocks. The reference list duplicates the tokens (``F[0] = F[1] = tokens``), so
    ``F[i] = hidden_states[max(i - 1, 0)]``: ``max(int((L + 1) * depth) - 2, 0)``."""
    return max(readout_layer_index(num_hidden_layers + 1, readout_depth) - 1, 0)


@dataclass
class FourDSModelOutput(ModelOutput):
    """Outputs of :class:`FourDSModel`.

    Args:
        last_hidden_state: (B, N, D) output of the last block (no final norm), tokens in (t, h, w) row-major order.
        readout_features: (B, T, h*w, D) features at ``config.readout_depth``, resampled in time to the input frames.
        hidden_states: L+1 tensors (B, N, D): the embeddings, then every block's output (when asked).
        attentions: L tensors (B, heads, N, N) of attention probabilities (when asked, eager attention only).
    """

    last_hidden_state: torch.FloatTensor | None = None
    readout_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class FourDSDepthEstimatorOutput(ModelOutput):
    """Outputs of :class:`FourDSForDepthEstimation`.

    Args:
        loss: mean squared error over valid pixels, when ``labels`` are given.
        predicted_depth: (B, T, H, W) raw depth values as the readout predicts them.
        readout_features: (B, T, h*w, D) backbone features fed to the readout.
        hidden_states: (B, N, D) embeddings and the output of every block the model holds (those up to the readout
            layer), when ``output_hidden_states``.
        attentions: (B, heads, N, N) attention probabilities of those blocks, when ``output_attentions`` (eager).
    """

    loss: torch.FloatTensor | None = None
    predicted_depth: torch.FloatTensor | None = None
    readout_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class FourDSEmbeddings(nn.Module):
    """Tubelet embedding (Conv3d, kernel = stride = tubelet, VALID) plus a learned (t, h, w) position embedding."""

    def __init__(self, config: FourDSConfig):
        super().__init__()
        self.config = config
        self.tubelet_size = tuple(config.tubelet_size)
        self.patch_embeddings = nn.Conv3d(
            config.num_channels, config.hidden_size, kernel_size=self.tubelet_size, stride=self.tubelet_size
        )
        self.grid = config.token_grid
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_tokens, config.hidden_size))

    def token_grid(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> tuple[int, int, int]:
        check_video_input(pixel_values, self.config.num_channels)
        frames, height, width = pixel_values.shape[1], pixel_values.shape[3], pixel_values.shape[4]
        pt, ph, pw = self.tubelet_size
        if frames % pt or height % ph or width % pw:
            raise ValueError(
                f"frames, height and width ({frames}, {height}, {width}) must be divisible by the tubelet size "
                f"{list(self.tubelet_size)}"
            )
        grid = (frames // pt, height // ph, width // pw)
        if grid != self.grid and not interpolate_pos_encoding:
            expected = (self.grid[0] * pt, self.grid[1] * ph, self.grid[2] * pw)
            raise ValueError(
                f"input of {frames} frames of {height}x{width} gives a token grid {grid}, but the model was trained on "
                f"{expected[0]} frames of {expected[1]}x{expected[2]} (grid {self.grid}); resize the input or pass "
                "interpolate_pos_encoding=True to resample the position embedding"
            )
        return grid

    def position_embedding_for(self, grid: tuple[int, int, int]) -> torch.Tensor:
        if grid == self.grid:
            return self.position_embeddings
        table = self.position_embeddings.reshape(*self.grid, -1)
        table = cubic_resize(table, {0: grid[0], 1: grid[1], 2: grid[2]}, antialias=True)
        return table.reshape(1, -1, table.shape[-1])

    def patch_embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, t, h, w, D) tubelet embedding, before the position embedding.

        With kernel = stride the Conv3d is exactly a matmul over flattened tubelets; computed that way it is several
        times faster on CPU than the oneDNN 3D convolution (the parameters stay those of ``patch_embeddings``).
        """
        batch, frames, channels, height, width = pixel_values.shape
        pt, ph, pw = self.tubelet_size
        t, h, w = frames // pt, height // ph, width // pw
        tubelets = pixel_values.reshape(batch, t, pt, channels, h, ph, w, pw)
        tubelets = tubelets.permute(0, 1, 4, 6, 3, 2, 5, 7).reshape(batch, t, h, w, channels * pt * ph * pw)
        weight = self.patch_embeddings.weight  # (D, C, pt, ph, pw): flattened in the same (C, pt, ph, pw) order
        return linear(
            tubelets.to(weight.dtype), weight.reshape(weight.shape[0], -1), self.patch_embeddings.bias
        )

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        grid = self.token_grid(pixel_values, interpolate_pos_encoding)
        x = self.patch_embed(pixel_values).flatten(1, 3)
        # Under autocast the tubelet matmul returns the autocast dtype; keeping the residual stream in it (as
        # transformers' VideoMAE does) halves the memory traffic of every residual add, LayerNorm and cast.
        return x + self.position_embedding_for(grid).to(x.dtype)


class FourDSLayer(PreNormViTLayer):
    """Pre-LN transformer block: ``x += Attn(LN(x)); x += MLP(LN(x))``."""


class FourDSEncoder(nn.Module):
    """The stack of pre-LN blocks (no final norm); ``num_layers`` defaults to ``config.num_hidden_layers``."""

    def __init__(self, config: FourDSConfig, num_layers: int | None = None):
        super().__init__()
        num_layers = config.num_hidden_layers if num_layers is None else num_layers
        self.layers = nn.ModuleList([FourDSLayer(config) for _ in range(num_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        start: int = 0,
        end: int | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """Run blocks ``start:end`` (default: all) on (B, N, D) tokens.

        Returns ``last_hidden_state`` (B, N, D); ``hidden_states`` (when asked): the input, then every block's
        output; ``attentions`` (when asked): every block's (B, heads, N, N) probabilities (None under SDPA).
        Every block is a ``GradientCheckpointingLayer``: ``model.gradient_checkpointing_enable()`` covers them.
        """
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers[start:end]:
            hidden_states, weights = layer(hidden_states, **kwargs)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(weights)
        return BaseModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )


def continue_outputs(first: BaseModelOutput, second: BaseModelOutput) -> BaseModelOutput:
    """Join the outputs of two consecutive :meth:`FourDSEncoder.forward` calls (the second's input, the first's
    output, is not repeated)."""
    return BaseModelOutput(
        last_hidden_state=second.last_hidden_state,
        hidden_states=None if first.hidden_states is None else first.hidden_states + second.hidden_states[1:],
        attentions=None if first.attentions is None else first.attentions + second.attentions,
    )


class FourDSPreTrainedModel(Rep4DPreTrainedModel):
    config: FourDSConfig
    config_class = FourDSConfig
    base_model_prefix = "fourds"
    _no_split_modules = ["FourDSLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, FourDSEmbeddings):
            trunc_normal_init_(module.position_embeddings, self.config.initializer_range)
        elif isinstance(module, FourDSDecodingTokens):
            trunc_normal_init_(module.tokens, self.config.initializer_range)


class FourDSDecodingTokens(nn.Module):
    """Learned grid of latent decoding tokens (SimpleMAE pretraining), one per output patch position."""

    def __init__(self, num_tokens: int, hidden_size: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(1, num_tokens, hidden_size))


class FourDSModel(FourDSPreTrainedModel):
    """The 4DS backbone: tubelet embedding + learned position embedding + L pre-LN transformer blocks.

    ``FourDSModel(config, readout_only=True)`` builds only the blocks up to the readout layer (``config.readout_depth``;
    10 of 12 for the B models), for models that read nothing above it (:class:`FourDSForDepthEstimation`, readouts):
    every parameter then takes part in the forward pass (plain DDP, gradient checkpointing), and the weights of the
    higher blocks in a full checkpoint are expected-unused when loading (``_keys_to_ignore_on_load_unexpected``).
    """

    def __init__(self, config: FourDSConfig, readout_only: bool = False):
        super().__init__(config)
        self.embeddings = FourDSEmbeddings(config)
        self.readout_feature_index = readout_layer_index(config.num_hidden_layers + 1, config.readout_depth)
        num_layers = self.readout_hidden_state_index if readout_only else config.num_hidden_layers
        self.encoder = FourDSEncoder(config, num_layers)
        if num_layers < config.num_hidden_layers:
            # Instance attribute: the blocks above the readout layer of a full checkpoint are not loaded, by design.
            unused = "|".join(str(index) for index in range(num_layers, config.num_hidden_layers))
            self._keys_to_ignore_on_load_unexpected = [rf"(^|\.)encoder\.layers\.(?:{unused})\."]
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    @property
    def readout_hidden_state_index(self) -> int:
        """Index into ``hidden_states`` (embeddings first) of the reference feature ``F[readout_feature_index]``.

        The reference list duplicates the tokens (``F[0] = F[1] = tokens``), so ``F[i] = hidden_states[max(i-1, 0)]``.
        """
        return max(self.readout_feature_index - 1, 0)

    def resample_readout_features(self, features: torch.Tensor, grid, num_frames: int) -> torch.Tensor:
        """(B, N, D) tokens -> (B, num_frames, h*w, D), cubic-resampled in time as ``jax.image.resize``."""
        t, h, w = grid
        return resample_frames(features.reshape(features.shape[0], t, h * w, features.shape[-1]), num_frames)

    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        feature_layer: int | None = None,
        interpolate_pos_encoding: bool | None = None,
        grid_features: bool = True,
        **kwargs,
    ) -> VideoFeaturesOutput:
        r"""Per-frame grid features, the ones readouts and label propagation read.

        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1].
            feature_layer: index into ``hidden_states`` (embeddings first) of the features to read; None reads the
                reference readout layer (``config.readout_depth``) and skips the blocks above it.
            interpolate_pos_encoding: as in :meth:`forward`.
            grid_features: accepted so every backbone is asked the same way; 4DS features are always on the grid.

        Returns:
            :class:`VideoFeaturesOutput` with ``features`` (B, T, h*w, D): the tokens of the chosen layer, cubic-
            resampled in time from the t = T / pt tubelet frames to the T input frames (``jax.image.resize``'s kernel, as the
            reference readouts), ``grid_size`` (h, w) = (H / ph, W / pw) and ``final_state`` None (not recurrent).
        """
        if interpolate_pos_encoding is None:
            interpolate_pos_encoding = self.config.interpolate_pos_encoding
        grid = self.embeddings.token_grid(pixel_values, interpolate_pos_encoding)
        if feature_layer is None:
            outputs = self(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, readout_only=True, **kwargs)
            features = outputs.readout_features
        else:
            if not -len(self.encoder.layers) - 1 <= feature_layer <= len(self.encoder.layers):
                raise ValueError(
                    f"feature_layer must index the {len(self.encoder.layers) + 1} hidden states (embeddings first), "
                    f"got {feature_layer}"
                )
            outputs = self(
                pixel_values, output_hidden_states=True, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs
            )
            features = self.resample_readout_features(outputs.hidden_states[feature_layer], grid, pixel_values.shape[1])
        return VideoFeaturesOutput(features=features, grid_size=(grid[1], grid[2]))

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        readout_only: bool = False,
        **kwargs,
    ) -> FourDSModelOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1] (no mean/std normalisation), as the reference expects.
            interpolate_pos_encoding: resample the position embedding for a grid other than the trained one
                (defaults to ``config.interpolate_pos_encoding``).
            readout_only: stop after the block that ``readout_features`` read (the reference never uses the blocks
                above it; for the B models that skips 2 of 12 blocks). ``last_hidden_state`` is then that block's
                output and ``hidden_states`` end there.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        if interpolate_pos_encoding is None:
            interpolate_pos_encoding = self.config.interpolate_pos_encoding
        grid = self.embeddings.token_grid(pixel_values, interpolate_pos_encoding)

        embeddings = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        # The blocks up to the readout layer, then (unless readout_only) the ones above it.
        split = self.readout_hidden_state_index
        outputs = self.encoder(embeddings, output_hidden_states, output_attentions, end=split, **kwargs)
        readout_features = self.resample_readout_features(outputs.last_hidden_state, grid, pixel_values.shape[1])
        if not readout_only:
            upper = self.encoder(
                outputs.last_hidden_state, output_hidden_states, output_attentions, start=split, **kwargs
            )
            outputs = continue_outputs(outputs, upper)
        return FourDSModelOutput(
            last_hidden_state=outputs.last_hidden_state,
            readout_features=readout_features,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


def depth_readout_geometry(config: FourDSConfig) -> tuple[tuple[int, int, int, int], int, int]:
    """Output shape (T, H, W, c), number of queries and classes of the depth readout for ``config``."""
    frames = config.readout_num_frames or config.num_frames
    output_shape = (frames, *config.image_size, config.readout_output_channels)
    patch = config.readout_decoding_patch_size
    if any(size % p for size, p in zip(output_shape[:3], patch)):
        raise ValueError(f"readout output {output_shape[:3]} is not divisible by the decoding patch {patch}")
    num_queries = math.prod(size // p for size, p in zip(output_shape[:3], patch))
    num_classes = math.prod(patch) * config.readout_output_channels
    return output_shape, num_queries, num_classes


class FourDSForDepthEstimation(FourDSPreTrainedModel):
    """4DS backbone + attention readout with per-patch learned queries (the released ScanNet depth head layout).

    Each query decodes one ``readout_decoding_patch_size`` block of the depth video, so the output has the input's
    frame count and resolution.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: FourDSConfig):
        super().__init__(config)
        # Only the blocks up to the readout layer: the readout never reads the ones above it.
        self.fourds = FourDSModel(config, readout_only=True)
        self.output_shape, num_queries, num_classes = depth_readout_geometry(config)
        self.readout = AttentionReadout(
            config,
            input_dim=config.hidden_size,
            num_params=config.readout_num_params,
            num_heads=config.readout_num_heads,
            num_classes=num_classes,
            num_queries=num_queries,
            num_frames=self.output_shape[0],
            layer_norm_eps=config.layer_norm_eps,
            act=config.hidden_act,
        )
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> FourDSDepthEstimatorOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1].
            labels: optional (B, T, H, W) ground-truth depth; the loss is the mean squared error over valid pixels.
            valid_mask: optional (B, T, H, W) boolean mask of pixels with ground truth (default: finite labels > 0).
        """
        outputs = self.fourds(
            pixel_values,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            readout_only=True,
            **kwargs,
        )
        logits = self.readout(outputs.readout_features)
        depth = patches_to_video(logits, self.output_shape, self.config.readout_decoding_patch_size)[..., 0]
        loss = depth_loss(depth, labels, valid_mask) if labels is not None else None
        return FourDSDepthEstimatorOutput(
            loss=loss,
            predicted_depth=depth,
            readout_features=outputs.readout_features,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


@dataclass
class FourDSPreTrainingOutput(ModelOutput):
    """Outputs of :class:`FourDSForPreTraining`.

    Args:
        loss: mean squared error between predicted and input pixels over all output patches (visible and masked).
        logits: (B, num_output_patches, patch_pixels) predicted pixels per output patch, (pt, ph, pw, C) flattened.
        mask: (B, N) float, 1.0 for the tubelets hidden from the encoder and 0.0 for the visible ones (as ViTMAE).
        reconstruction: (B, T, C, H, W) the predicted video.
        hidden_states: the visible tokens (B, N_visible, D) after the embeddings, then every block's output: (B,
            N_visible, D) for the encoder blocks, (B, N_visible + num_output_patches, D) for the last
            ``decoder_num_layers`` blocks (which also see the decoding tokens); when ``output_hidden_states``.
        attentions: the attention probabilities (B, heads, n, n) of every block, when ``output_attentions`` (eager).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def random_token_mask(
    batch: int, num_tokens: int, mask_ratio: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """(batch, num_tokens) boolean mask with exactly ``round(num_tokens * mask_ratio)`` True per row (at least one
    token stays visible), uniformly at random as in MAE."""
    num_masked = min(int(round(num_tokens * mask_ratio)), num_tokens - 1)
    noise = torch.rand(batch, num_tokens, generator=generator, device=generator.device if generator else device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return (ranks < num_masked).to(device)


class FourDSForPreTraining(FourDSPreTrainedModel):
    """SimpleMAE pretraining of a 4DS backbone (paper section 5).

    A random ``mask_ratio`` of the tubelets is dropped; the visible tokens (with their position embeddings) go through
    the first ``L - decoder_num_layers`` blocks; a learned grid of decoding tokens, one per output patch, is then
    concatenated and the last ``decoder_num_layers`` blocks process both; a patchwise linear decoder maps every
    decoding token to the pixels of its ``decoder_patch_size`` patch. The loss is the L2 error over all patches,
    visible and masked, against the raw input pixels (no per-patch normalisation).

    The decoding layers are counted in ``num_hidden_layers`` (the backbone's last blocks), so a converted released
    checkpoint can continue pretraining and the pretrained backbone loads into :class:`FourDSModel` unchanged.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: FourDSConfig):
        super().__init__(config)
        if not 0 < config.decoder_num_layers <= config.num_hidden_layers:
            raise ValueError(
                f"decoder_num_layers ({config.decoder_num_layers}) must be in 1..num_hidden_layers "
                f"({config.num_hidden_layers})"
            )
        self.fourds = FourDSModel(config)
        grid = (config.num_frames, *config.image_size)
        patch = config.decoder_patch_size
        if any(size % p for size, p in zip(grid, patch)):
            raise ValueError(f"the input grid {grid} is not divisible by decoder_patch_size {patch}")
        self.output_grid = tuple(size // p for size, p in zip(grid, patch))
        self.decoding_tokens = FourDSDecodingTokens(math.prod(self.output_grid), config.hidden_size)
        self.pixel_decoder = Linear(config.hidden_size, math.prod(patch) * config.num_channels)
        self.post_init()

    def reconstruct(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, patches, pixels) -> (B, T, C, H, W)."""
        frames, height, width = (n * p for n, p in zip(self.output_grid, self.config.decoder_patch_size))
        video = patches_to_video(
            logits, (frames, height, width, self.config.num_channels), self.config.decoder_patch_size
        )
        return video.permute(0, 1, 4, 2, 3)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> FourDSPreTrainingOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1] on the trained grid.
            mask: optional (B, N) mask, True (or 1.0) for hidden tubelets, the same count in every row (the ``mask``
                of a previous output can be passed back); drawn at ``config.mask_ratio`` (from ``generator`` if
                given) otherwise.
            output_hidden_states / output_attentions: also return every block's output / attention probabilities
                (defaults: the config's).
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        embeddings = self.fourds.embeddings
        embeddings.token_grid(pixel_values, interpolate_pos_encoding=False)
        tokens = embeddings(pixel_values)
        batch, num_tokens, width = tokens.shape
        if mask is None:
            mask = random_token_mask(batch, num_tokens, self.config.mask_ratio, generator, device=tokens.device)
        else:
            if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool and not mask.is_complex():
                if not ((mask == 0) | (mask == 1)).all():
                    raise ValueError("a numeric mask must hold only 0 (visible) and 1 (hidden)")
                mask = mask.to(device=tokens.device) == 1
            if not isinstance(mask, torch.Tensor) or mask.shape != (batch, num_tokens) or mask.dtype != torch.bool:
                given = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise ValueError(f"mask must be a boolean or 0/1 tensor of shape {(batch, num_tokens)}, got {given}")
            counts = mask.sum(1)
            if (counts != counts[0]).any() or counts[0] >= num_tokens:
                raise ValueError("every row of mask must hide the same number of tubelets and keep at least one")
        visible_index = (~mask).nonzero()[:, 1].reshape(batch, -1)
        hidden = torch.gather(tokens, 1, visible_index[..., None].expand(-1, -1, width))
        # The encoder blocks see the visible tokens; the last decoder_num_layers blocks also the decoding tokens.
        encoder = self.fourds.encoder
        split = len(encoder.layers) - self.config.decoder_num_layers
        outputs = encoder(hidden, output_hidden_states, output_attentions, end=split, **kwargs)
        decoding = self.decoding_tokens.tokens.expand(batch, -1, -1).to(outputs.last_hidden_state.dtype)
        decoder_input = torch.cat([outputs.last_hidden_state, decoding], dim=1)
        outputs = continue_outputs(
            outputs, encoder(decoder_input, output_hidden_states, output_attentions, start=split, **kwargs)
        )
        logits = self.pixel_decoder(outputs.last_hidden_state[:, -self.decoding_tokens.tokens.shape[1] :])
        target = video_to_patches(pixel_values.permute(0, 1, 3, 4, 2), self.config.decoder_patch_size)
        loss = nn.functional.mse_loss(logits.float(), target.float())
        return FourDSPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask.to(logits.dtype),
            reconstruction=self.reconstruct(logits),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSForPreTraining",
    "FourDSPreTrainingOutput",
    "FourDSPreTrainedModel",
    "FourDSModelOutput",
    "FourDSDepthEstimatorOutput",
]
