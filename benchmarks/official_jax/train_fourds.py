"""Official side of ``train-4ds``: one SimpleMAE pretraining step (forward, loss, backward, AdamW update) of a 4DS
model at rep4d's training preset (``spec["train"]["config"]``), built from the official modules.

The official code releases the 4DS encoder only (no SimpleMAE training code; spec 4ds.md section 5), so the step is
assembled from the ``representations4d`` package's own modules, imported from the checkout:

* tokenizer: ``model.Tokenizer`` with ``model.PatchEmbedding`` (rep4d's tubelet size and width) and kauldron's
  ``pos_embeddings.LearnedEmbedding`` over the (t, h, w) axes, as the official colab builds the encoder;
* blocks: the block list of ``model.GeneralizedTransformer.from_spec(num_heads, num_layers, mlp_size)`` (kauldron
  ``PreNormBlock`` / ``ImprovedMultiHeadDotProductAttention`` / ``TransformerMLP``) at rep4d's sizes; the first
  ``num_hidden_layers - decoder_num_layers`` blocks run on the kept tubelets, the last ``decoder_num_layers`` on the
  kept tubelets followed by the decoding tokens (``GeneralizedTransformer.__call__`` itself has no place to join
  tokens midway, so the blocks are called one by one as its loop does).

Minimal JAX written here, matching ``rep4d.modeling.modeling_fourds.FourDSForPreTraining`` (none exists in the
official code): the random tubelet masking (per clip, ``jax.random.choice`` without replacement of the
``N - min(round(N * mask_ratio), N - 1)`` kept tubelets, sorted as rep4d's ``nonzero``; values differ from rep4d's
torch generator, counts are the same), the learned decoding tokens (a flax param of rep4d's shape ``(1,
prod(output_grid), D)``), the patch-wise ``nn.Dense`` pixel decoder (``D -> prod(decoder_patch_size) * C``) and the
loss: rep4d's ``nn.functional.mse_loss(logits, target)``, the mean squared error over every pixel of every output
patch (visible and masked) against the raw input pixels, patches flattened in (pt, ph, pw, C) order.

The whole step (masking, ``jax.value_and_grad``, ``optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay)``
update, ``optax.apply_updates``) is one ``jax.jit`` with the parameters and optimiser state donated, fp32 (bf16
workloads: mixed precision, ``_side.adamw_step_call``). The
pixels are ``jax.random.uniform`` in [0, 1], channels last (the official layout). Run by ``bench_official.py`` with
``--official-python``; see ``_side.py``.
"""

import math
from typing import Sequence

from _side import adamw_step_call, count_params, load_spec, time_and_report

spec = load_spec()
import jax
import jax.numpy as jnp
from flax import linen as nn
from kauldron.modules import pos_embeddings
from representations4d.models import model as model_lib

train = spec["train"]
config = train["config"]
frames, height, width = train["clip"]
batch = train["batch"]
channels = config["num_channels"]
hidden = config["hidden_size"]
tubelet = tuple(config["tubelet_size"])
decoder_patch = tuple(config["decoder_patch_size"])
num_layers = config["num_hidden_layers"]
split = num_layers - config["decoder_num_layers"]

# Token counts exactly as rep4d's FourDSForPreTraining / random_token_mask.
num_tokens = math.prod(n // p for n, p in zip((frames, height, width), tubelet))
num_masked = min(int(round(num_tokens * config["mask_ratio"])), num_tokens - 1)
num_kept = num_tokens - num_masked
output_grid = tuple(n // p for n, p in zip((config["num_frames"], *config["image_size"]), decoder_patch))
num_decoding = math.prod(output_grid)
patch_pixels = math.prod(decoder_patch) * channels


class SimpleMAE(nn.Module):
    """SimpleMAE around the official tokenizer and blocks; returns the scalar loss."""

    tokenizer: nn.Module
    layers: Sequence[nn.Module]

    @nn.compact
    def __call__(self, video, keep_index):
        tokens = self.tokenizer(video)  # (B, N, D), (t, h, w) row-major
        x = jnp.take_along_axis(tokens, keep_index[..., None], axis=1)  # (B, kept, D)
        for layer in self.layers[:split]:
            x = layer(x)
        decoding = self.param("decoding_tokens", nn.initializers.normal(stddev=0.02), (1, num_decoding, hidden))
        x = jnp.concatenate([x, jnp.broadcast_to(decoding, (x.shape[0], num_decoding, hidden))], axis=1)
        for layer in self.layers[split:]:
            x = layer(x)
        logits = nn.Dense(patch_pixels, name="pixel_decoder")(x[:, -num_decoding:])  # (B, patches, pt*ph*pw*C)
        # rep4d's video_to_patches: (B, T, H, W, C) -> (B, n0*n1*n2, p0*p1*p2*C)
        p0, p1, p2 = decoder_patch
        b, t, h, w, c = video.shape
        target = video.reshape(b, t // p0, p0, h // p1, p1, w // p2, p2, c)
        target = target.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, p0 * p1 * p2 * c)
        return jnp.mean((logits - target) ** 2)


model = SimpleMAE(
    tokenizer=model_lib.Tokenizer(
        patch_embedding=model_lib.PatchEmbedding(patch_size=tubelet, num_features=hidden),
        posenc=pos_embeddings.LearnedEmbedding(),
        posenc_axes=(-4, -3, -2),
    ),
    layers=model_lib.GeneralizedTransformer.from_spec(
        num_heads=config["num_attention_heads"], num_layers=num_layers, mlp_size=config["intermediate_size"]
    ).layers,
)


def keep_indices(key):
    """(B, kept) sorted indices of the kept tubelets, drawn per clip uniformly without replacement."""
    keys = jax.random.split(key, batch)
    choose = lambda k: jnp.sort(jax.random.choice(k, num_tokens, (num_kept,), replace=False))  # noqa: E731
    return jax.vmap(choose)(keys)


video = jax.random.uniform(jax.random.key(1), (batch, frames, height, width, channels), jnp.float32)
params = model.init(jax.random.key(0), video, keep_indices(jax.random.key(2)))["params"]
num_params = count_params(params)


def loss_fn(params, video, key):
    return model.apply({"params": params}, video, keep_indices(key))


call = adamw_step_call(loss_fn, params, train, video, bf16=spec["bf16"])
loss = call()  # warm-up (XLA compilation)
arch = {"params": num_params, "hidden": hidden, "clip": [frames, height, width], "batch": batch,
        "output_shape": list(loss.shape), "output_dtype": str(loss.dtype),
        "kept_tokens": num_kept, "decoding_tokens": num_decoding, "blocks": [split, num_layers - split]}

time_and_report(call, arch, spec)
