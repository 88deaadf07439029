"""Official side of ``train-rvm``: one step (forward, loss, backward, AdamW update) of RVM's asymmetric masked
reconstruction at rep4d's training preset (``spec["train"]["config"]``), with the official notebook's model.

The official RVM model exists only in the colab ``colabs/rvm_inference_demo.ipynb``; its "Imports" and "Define model"
cells are executed at run time (``_notebook.load_notebook_namespace``; nothing is copied here). ``VideoSiamMAE`` is
built from the notebook's classes at rep4d's sizes, as the "Define model" cell builds it but with explicit sizes
(``Transformer.from_spec``: the notebook's ``from_variant_str`` only knows named ViT variants), with the
decoder (``CrossAttentionTransformer``, ``nn.Dense`` decoder/delta embedders, ``SincosPosEmb`` decoder posenc,
``Detokenizer``), and float32 everywhere (the notebook passes bfloat16 to the LayerNorms; rep4d's side is fp32). The
step runs the notebook's own ``VideoSiamMAE.reconstruct(source_frames, target_frames, target_deltas, rng_key=...)``:
source frames through the encoder + gated recurrent core, target frames masked by the notebook's ``random_masking``
(``int(N * (1 - 0.95))`` visible patches per frame, as rep4d) through the encoder, the cross-attention decoder.

Minimal JAX written here (the official code has no RVM loss or training code): the loss, matching rep4d's
``masked_patch_loss`` exactly: squared error on raw [0, 1] pixels, mean over each patch's pixels and channels, then
the mean over the masked patches of every target frame (``sum(per_patch * mask) / max(sum(mask), 1)``). Frames as
rep4d's ``RVMPretrainingObjective`` with a clip of exactly ``source + target`` frames: sources 0..S-1, targets
S..S+T-1, deltas = target offsets from the first source frame (S..S+T-1). The whole step (``jax.value_and_grad``,
``optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay)``, ``optax.apply_updates``) is one ``jax.jit`` with the
parameters and optimiser state donated, fp32 (bf16 workloads: mixed precision, ``_side.adamw_step_call``); a fresh
masking key each step. Pixels: ``jax.random.uniform`` in [0, 1], channels last (the official layout). Run by ``bench_official.py`` with ``--official-python``; see ``_side.py``.
"""

from _notebook import load_notebook_namespace
from _side import adamw_step_call, count_params, load_spec, time_and_report

spec = load_spec()
import jax
import jax.numpy as jnp

ns = load_notebook_namespace(spec["official_src"], "rvm_inference_demo.ipynb", ["Imports", "Define model"])
nn = ns["nn"]

train = spec["train"]
config = train["config"]
frames, height, width = train["clip"]
batch = train["batch"]
num_source, num_target = train["rvm_source_frames"], train["rvm_target_frames"]
if frames != num_source + num_target:
    raise ValueError(f"clip of {frames} frames: only source + target = {num_source + num_target} is supported")
# The notebook's reconstruct hard-codes a 64-class delta one-hot and a core attention width equal to the token width.
assert config["num_delta_classes"] == 64, config["num_delta_classes"]
assert config["rnn_attention_size"] in (None, config["hidden_size"]), config["rnn_attention_size"]
hidden, patch, channels = config["hidden_size"], config["patch_size"], config["num_channels"]
decoder_width = config["decoder_hidden_size"]
f32 = jnp.float32
dtype = jnp.bfloat16 if spec["bf16"] else f32  # the modules' computation dtype

model = ns["VideoSiamMAE"](
    tokenizer=ns["Tokenizer"](
        patch_embedding=ns["PatchEmbedding"](patch_size=[1, patch, patch], num_features=hidden),
        posenc=ns["SincosPosEmb"](base_token_shape=list(config["base_token_shape"])),
    ),
    encoder=ns["Transformer"].from_spec(num_heads=config["num_attention_heads"],
                                        num_layers=config["num_hidden_layers"],
                                        mlp_size=config["intermediate_size"], dtype=dtype),
    rnn_core=ns["GatedTransformerCore"](
        transformer=ns["CrossAttentionTransformer"](
            num_layers=config["rnn_num_layers"], num_heads=config["rnn_num_attention_heads"], num_feats=hidden,
            mlp_dim=config["rnn_intermediate_size"], dtype=dtype),
        initializer=ns["RandomStateInit"](),
        token_dim=hidden,
        state_layer_norm=nn.LayerNorm(epsilon=config["state_layer_norm_eps"], use_scale=True, use_bias=False),
    ),
    latent_emb_dim=hidden,
    decoder=ns["CrossAttentionTransformer"](
        num_layers=config["decoder_num_layers"], num_heads=config["decoder_num_attention_heads"],
        num_feats=decoder_width, mlp_dim=config["decoder_intermediate_size"], dtype=dtype),
    decoder_embedder=nn.Dense(decoder_width),
    delta_embedder=nn.Dense(decoder_width),
    latent_posenc=ns["SincosPosEmb"](),
    detokenizer=ns["Detokenizer"](patch_size=(patch, patch), num_features=channels),
    decoder_emb_dim=decoder_width,
    masking_ratio=config["mask_ratio"],
)

grid_h, grid_w = height // patch, width // patch
num_patches = grid_h * grid_w
num_visible = int(num_patches * (1.0 - float(config["mask_ratio"])))
deltas = jnp.broadcast_to(jnp.arange(num_source, num_source + num_target), (batch, num_target))


def loss_fn(params, video, key):
    """rep4d's masked_patch_loss on the notebook's reconstruction of the target frames."""
    source, target = video[:, :num_source], video[:, num_source:]
    out = model.apply(params, source, target, deltas, rng_key=key, method=model.reconstruct,
                      rngs={"default": key})
    squared = (out["reconstructed"] - target) ** 2  # (B, TT, H, W, C)
    per_patch = squared.reshape(batch, num_target, grid_h, patch, grid_w, patch, channels).mean(axis=(3, 5, 6))
    mask = out["mask"][..., 0]  # (B, TT, h, w), 1 = masked
    return (per_patch * mask).sum() / jnp.maximum(mask.sum(), 1)


video = jax.random.uniform(jax.random.key(1), (batch, frames, height, width, channels), f32)
init_key = jax.random.key(0)
params = model.init({"params": init_key, "default": init_key}, video[:, :num_source], video[:, num_source:], deltas,
                    rng_key=init_key, method=model.reconstruct)
num_params = count_params(params)
call = adamw_step_call(loss_fn, params, train, video, bf16=spec["bf16"])
loss = call()  # warm-up (XLA compilation)
arch = {"params": num_params, "hidden": hidden, "clip": [frames, height, width], "batch": batch,
        "output_shape": list(loss.shape), "output_dtype": str(loss.dtype),
        "visible_target_patches": num_visible, "decoder_queries": num_target * (1 + num_patches)}

time_and_report(call, arch, spec)
