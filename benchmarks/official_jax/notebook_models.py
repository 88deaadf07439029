"""Official MooG and RVM rows from the colab notebooks (``moog-clip-*``, ``moog-stream-*``, ``rvm-s-stream``,
``rvm-b-stream``).

The official MooG and RVM inference models exist only inside the official colab notebooks. This script (run by
``bench_official.py`` with ``--official-python``; see ``_side.py``) reads the notebook from ``--official-src`` at run
time and executes the code cells that define the model (picked by their "# @title" line; no data download, checkpoint
or visualisation cell), then builds the model as the notebook's "Define model" cell does, with random weights. The
notebooks import visualisation-only modules (mediapy, tapnet's viz_utils, cv2, seaborn, sklearn, pandas, PIL) that
the model cells never use: any of them that is not installed is replaced by an empty module so the notebook's imports
cell runs unchanged. MooG's SRTDecoder reads the notebook's globals ``height``/``width``: they are set to the frame
size in the cells' namespace.
"""
from _notebook import load_notebook_namespace, stub_missing_modules
from _side import count_params, load_spec, time_and_report, to_bf16

spec = load_spec()
src = spec["official_src"]
stub_missing_modules()
import jax
import jax.numpy as jnp

workload = spec["workload"]
family = workload.split("-")[0]
notebook = {"moog": "moog_inference_demo.ipynb", "rvm": "rvm_inference_demo.ipynb"}[family]
titles = {"moog": ["Imports", "Attention module", "Position embedding module", "Base module", "Model module",
                   "Readout module", "Define model"],
          "rvm": ["Imports", "Define model"]}[family]
size = spec["size"]
namespace = load_notebook_namespace(src, notebook, titles, {"height": size, "width": size})
key = jax.random.PRNGKey(0)
rngs = {"default": key}
if family == "moog":
    model = namespace["model"]  # the notebook's EvalWrapper(MooG(...)): encoder + predictor/corrector scan
    kind = workload.split("-")[1]
    frames = 8 if kind == "clip" else 1
    video = jax.random.uniform(jax.random.PRNGKey(1), (1, frames, size, size, 3), jnp.float32)
    tokens = int(model.pretrained_model.initializer.shape[0])
    hidden = int(model.pretrained_model.initializer.shape[1])
    params = model.init({"params": key, "default": key}, video)
    forward = jax.jit(lambda p, v, s: model.apply(p, v, s, rngs=rngs))
    state = model.apply(params, video[:, :1], rngs=rngs)["state"] if kind == "stream" else None
    params_counted = params
    if spec["bf16"]:  # bf16 parameters, frames and state: the notebook's modules compute in their inputs' dtype
        params, video, state = to_bf16((params, video, state))
    compiled = forward.lower(params, video, state).compile()
    def call():
        return jax.block_until_ready(compiled(params, video, state))["features"]
else:
    preset = workload.split("-")[1]
    vit = namespace["VIT_SIZES"][preset.upper()]
    hidden, heads = vit[0], vit[3]
    # rep4d's RVM presets s/b: recurrent core of 4 cross-attention layers, 8 heads / MLP 2048 (S), 12 / 3072 (B);
    # the notebook builds L (core 16 heads, MLP 4096) the same way. Encoder only: the notebook's __call__ (feature
    # extraction) does not use the reconstruction decoder, so it is left out. dtype: float32 (the notebook passes
    # bfloat16 to the LayerNorms; rep4d's side is fp32); bfloat16 for the bf16 workloads.
    dtype = jnp.bfloat16 if spec["bf16"] else jnp.float32
    core = {"s": (8, 2048), "b": (12, 3072)}[preset]
    nn = namespace["nn"]
    model = namespace["VideoSiamMAE"](
        tokenizer=namespace["Tokenizer"](
            patch_embedding=namespace["PatchEmbedding"](patch_size=[1, 16, 16], num_features=hidden),
            posenc=namespace["SincosPosEmb"](base_token_shape=[16, 16]),
        ),
        encoder=namespace["Transformer"].from_variant_str(variant_str=preset.upper(), dtype=dtype),
        rnn_core=namespace["GatedTransformerCore"](
            transformer=namespace["CrossAttentionTransformer"](
                num_layers=4, num_heads=core[0], num_feats=hidden, mlp_dim=core[1], dtype=dtype),
            initializer=namespace["RandomStateInit"](),
            token_dim=hidden,
            state_layer_norm=nn.LayerNorm(epsilon=0.0001, use_scale=True, use_bias=False),
        ),
        latent_emb_dim=hidden,
    )
    video = jax.random.uniform(jax.random.PRNGKey(1), (1, size, size, 3), jnp.float32)
    params = model.init({"params": key, "default": key}, video)
    state = model.apply(params, video, rngs=rngs)["state"]
    forward = jax.jit(lambda p, v, s: model.apply(p, v, s, rngs=rngs))
    params_counted = params
    if spec["bf16"]:
        params, video, state = to_bf16((params, video, state))
    compiled = forward.lower(params, video, state).compile()
    tokens = (size // 16) ** 2
    def call():
        return jax.block_until_ready(compiled(params, video, state))["features"]
num_params = count_params(params_counted)
output = call()
arch = {"params": int(num_params), "hidden": hidden, "tokens": tokens, "output_shape": list(output.shape),
        "output_dtype": str(output.dtype)}

time_and_report(call, arch, spec)
