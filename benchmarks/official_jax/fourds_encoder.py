"""Official 4DS rows (``4ds-b-fp32``, ``4ds-b-bf16``): the official ``scaling4d_depth_demo`` colab's encoder and
``EncoderToReadout``, built from the ``representations4d`` package (its readout head left out: rep4d's side is
``get_video_features``, the same (B, T, h*w, D) features the head reads). Run by ``bench_official.py`` with
``--official-python``; see ``_side.py``.
"""
import re

from _side import count_params, load_spec, time_and_report

spec = load_spec()
import jax
import jax.numpy as jnp
from flax import linen as nn
from kauldron.modules import pos_embeddings
from kauldron.modules import vit as kd_vit
from representations4d.models import model as model_lib

shape = spec["shape"]
bf16 = spec["bf16"]
dtype = jnp.bfloat16 if bf16 else jnp.float32
patch = (2, 16, 16) if shape["preset"] == "b" else (2, 8, 8)
size = {"b": "B"}.get(shape["preset"], "Ti")
frames, side = shape["frames"], shape["size"]
encoder = model_lib.Model(
    encoder=model_lib.Tokenizer(
        patch_embedding=model_lib.PatchEmbedding(patch_size=patch, num_features=kd_vit.VIT_SIZES[size][0]),
        posenc=pos_embeddings.LearnedEmbedding(dtype=dtype),
        posenc_axes=(-4, -3, -2),
    ),
    processor=model_lib.GeneralizedTransformer.from_variant_str(variant_str=size, dtype=dtype),
)
encoder2readout = model_lib.EncoderToReadout(
    embedding_shape=(frames // patch[0], side // patch[1], side // patch[2]),
    readout_depth=0.95,
    num_input_frames=frames,
)
model = nn.Sequential([encoder, encoder2readout])
video = jnp.zeros((1, frames, side, side, 3), jnp.float32)
params = model.init(jax.random.key(0), video, is_training_property=True)  # as the official colab
num_params = count_params(params)
video = jax.random.uniform(jax.random.key(1), video.shape, jnp.float32)
if bf16:  # bf16 parameters and input (XLA's CPU backend may still compile the matmuls as f32 dots)
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), params)
    video = video.astype(jnp.bfloat16)
forward = jax.jit(lambda p, v: model.apply(p, v, is_training_property=False))
compiled = forward.lower(params, video).compile()
# Blocks XLA really runs (it drops the ones above the readout layer): one 'dense_in' MLP matmul per block.
blocks = len(set(re.findall(r"processor/layers_(\d+)/mlp/dense_in/dot_general", compiled.as_text())))
def call():
    return jax.block_until_ready(compiled(params, video))
output = call()
arch = {"params": int(num_params), "tokens": (frames // patch[0]) * (side // patch[1]) * (side // patch[2]),
        "hidden": kd_vit.VIT_SIZES[size][0], "layers": kd_vit.VIT_SIZES[size][1], "blocks_run": blocks,
        "output_shape": list(output.shape), "output_dtype": str(output.dtype)}

time_and_report(call, arch, spec)
