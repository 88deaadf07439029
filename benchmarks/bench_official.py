"""Side by side: the official representations4d JAX/Flax models vs rep4d (and transformers' VideoMAE), same shapes.

    # rep4d (and VideoMAE) only: ratios are "n/a"
    python benchmarks/bench_official.py --rep4d-only
    # against the official code: a python where `representations4d`, jax and flax import, and/or its source folder
    python benchmarks/bench_official.py --official-python /opt/r4d/bin/python --official-src ~/representations4d \
        --workloads 4ds-b-fp32 4ds-b-bf16 --rounds 3 --json official.json
    # seconds-long smoke run (CI): every workload at tiny sizes (not comparable across sides: the official side's
    # smallest ViT is kauldron's "Ti", wider than rep4d's tiny training preset)
    python benchmarks/bench_official.py --rep4d-only --tiny --rounds 1 --repeats 1

This script installs nothing. Each side runs in its own process (``--side rep4d|videomae`` of this script, or a small
JAX snippet run by ``--official-python``), one warm-up call then ``--repeats`` timed calls, median. The sides are
alternated A B A B over ``--rounds`` rounds and the median over rounds is reported, so background load hits every side
alike. Ratio = official time / rep4d time (> 1: rep4d is faster); VideoMAE (4DS workloads only) = VideoMAE time /
rep4d time. The CPU name and ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` are printed: bf16 is only worth running
on a CPU that has it natively (AMX / avx512_bf16); elsewhere rep4d's policy is fp32.

Workloads (random weights; timing does not depend on their values):

* ``4ds-b-fp32``, ``4ds-b-bf16``: 4DS-B, 16x224x224, batch 1: the features the official colab's depth readout reads
  (the encoder and ``EncoderToReadout`` of ``scaling4d_depth_demo``; rep4d: ``get_video_features``), i.e. the 10 of
  12 blocks up to the readout layer (XLA drops the two above it from the official graph; the count of blocks each
  side really runs is checked) and the cubic resampling to 16 frames; VideoMAE runs the same 10 blocks. bf16: CPU
  autocast for rep4d and VideoMAE, bf16 parameters and input for JAX. Both sides report their architecture
  (parameters, width, layers, tokens, blocks run, output shape) and the script prints whether they are the same.
* ``moog-clip-{128,256}``: MooG (released config) on an 8-frame clip; ``moog-stream-{128,256}``: one frame with the
  carried state (per frame); ``moog-decode-{128,256}``: the full-resolution pixel decode of one frame (every pixel a
  query; rep4d decodes 4096 queries at a time).
* ``rvm-s-stream``, ``rvm-b-stream``: RVM-S / RVM-B, one 256x256 frame with the carried state (per frame).
* ``train-4ds``, ``train-rvm``, ``train-moog``: one AdamW step of the objective (``--train-preset``, default
  ``small`` training presets of ``rep4d.configuration``), batch 2.

The official side covers the 4DS workloads (built as in the official ``scaling4d_depth_demo`` colab from the
``representations4d`` package; environment recipe in docs/BENCHMARKS.md) and the MooG clip/stream and RVM-S/B stream
workloads. The official MooG and RVM models live only in the colab notebooks, not in the package: for those rows the
official side reads ``colabs/moog_inference_demo.ipynb`` / ``colabs/rvm_inference_demo.ipynb`` from ``--official-src``
at run time and executes the notebook's own model-definition cells (nothing of the official code is copied here; see
``OFFICIAL_NOTEBOOK_SNIPPET``): MooG is the notebook's ``model`` (``EvalWrapper(MooG(...))``, the released config;
the rep4d side is ``MooGModel``, the backbone without the pixel decoder, which the notebook's model does not run
either), RVM-S / RVM-B are the notebook's ``VideoSiamMAE`` built as its "Define model" cell builds RVM-L, with the
S / B sizes of rep4d's presets, fp32, without the reconstruction decoder (unused by the per-frame ``__call__``).
``moog-decode-*`` runs the notebook MooG's ``SRTDecoder`` on one frame's states (every pixel a query, all at once;
rep4d chunks them by 4096); its architecture check reads DIFFERS: the notebook's decoder blocks also self-attend over
the pixel queries, rep4d's decoder (and, by the README's parameter count, the released one) is cross-attention only,
so that ratio is not like for like (docs/BENCHMARKS.md). The training steps have no official side ("n/a"), nor do the notebook rows with
``--tiny``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

FOURDS = ("4ds-b-fp32", "4ds-b-bf16")
WORKLOADS = (*FOURDS, "moog-clip-128", "moog-clip-256", "moog-stream-128", "moog-stream-256", "moog-decode-128",
             "moog-decode-256", "rvm-s-stream", "rvm-b-stream", "train-4ds", "train-rvm", "train-moog")
DEFAULT_WORKLOADS = ("4ds-b-fp32", "4ds-b-bf16", "moog-clip-128", "moog-stream-128", "moog-decode-128",
                     "rvm-s-stream", "rvm-b-stream", "train-4ds", "train-rvm", "train-moog")
# MooG and RVM: the models defined in the official notebooks (OFFICIAL_NOTEBOOK_SNIPPET); no pixel decode there.
OFFICIAL_NOTEBOOK_WORKLOADS = {"moog-clip-128", "moog-clip-256", "moog-stream-128", "moog-stream-256",
                               "moog-decode-128", "moog-decode-256", "rvm-s-stream", "rvm-b-stream"}
OFFICIAL_WORKLOADS = set(FOURDS) | OFFICIAL_NOTEBOOK_WORKLOADS


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ----------------------------------------------------------------------------------------------------------------
# The torch sides (run in a child process of this script)
# ----------------------------------------------------------------------------------------------------------------


def fourds_shape(spec: dict) -> dict:
    if spec["tiny"]:
        return {"preset": "tiny", "frames": 8, "size": 32}
    return {"preset": "b", "frames": 16, "size": 224}


def build_torch_call(workload: str, side: str, spec: dict):
    """A zero-argument callable running one unit of ``workload`` on ``side`` (rep4d or videomae)."""
    import torch

    import rep4d  # noqa: F401

    torch.manual_seed(0)
    bf16 = workload.endswith("bf16")
    if workload in FOURDS:
        from rep4d.training.objectives import fourds_config

        shape = fourds_shape(spec)
        config = fourds_config(shape["preset"], {"num_frames": shape["frames"],
                                                 "image_size": [shape["size"], shape["size"]]})
        pixels = torch.rand(1, shape["frames"], 3, shape["size"], shape["size"])
        from rep4d.modeling.modeling_fourds import FourDSModel

        # The features the official colab's depth readout reads: the blocks up to the readout layer (10 of 12 for
        # B; XLA drops the others on the official side), resampled in time to the input frames.
        model = FourDSModel(config).eval()
        blocks = model.readout_hidden_state_index
        if side == "videomae":
            from transformers import VideoMAEConfig, VideoMAEModel

            model = VideoMAEModel(VideoMAEConfig(
                image_size=shape["size"], patch_size=config.tubelet_size[1], num_frames=shape["frames"],
                tubelet_size=config.tubelet_size[0], hidden_size=config.hidden_size,
                num_hidden_layers=blocks, num_attention_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size, use_mean_pooling=False, attn_implementation="sdpa",
            )).eval()
            layers = model.encoder.layer
        else:
            layers = model.encoder.layers
        ran = set()
        for index, layer in enumerate(layers):
            layer.register_forward_hook(lambda module, args, output, index=index: ran.add(index))

        def call():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if side == "videomae":
                    return model(pixels).last_hidden_state
                return model.get_video_features(pixels).features

        output = call()
        call.arch = {"params": sum(p.numel() for p in model.parameters()), "hidden": config.hidden_size,
                     "tokens": math.prod(n // p for n, p in zip((shape["frames"], shape["size"], shape["size"]),
                                                                config.tubelet_size)),
                     "layers": config.num_hidden_layers if side == "rep4d" else blocks, "blocks_run": len(ran),
                     "output_shape": list(output.shape), "output_dtype": str(output.dtype).replace("torch.", "")}
        return call
    if side != "rep4d":
        raise ValueError(f"side {side!r} has no {workload} workload")
    if workload.startswith("moog"):
        from rep4d.configuration.configuration_moog import MooGConfig
        from rep4d.modeling.modeling_moog import MooGForNextFramePrediction

        if spec["tiny"]:
            from rep4d.configuration.configuration_moog import MOOG_TRAIN_PRESETS

            config, size = MooGConfig(**MOOG_TRAIN_PRESETS["tiny"]), 32
        else:
            config, size = MooGConfig.from_preset("released"), int(workload.rsplit("-", 1)[1])
        model = MooGForNextFramePrediction(config).eval()
        generator = torch.Generator().manual_seed(0)
        kind = workload.split("-")[1]
        frames = 8 if kind == "clip" else 1
        video = torch.rand(1, frames, 3, size, size, generator=generator)
        with torch.inference_mode():
            state = model.moog(video[:, :1], generator=generator).final_state
            predicted = model.moog(video[:, :1], state=state).predicted_states
        if kind == "clip":
            def call():
                with torch.inference_mode():
                    return model.moog(video, generator=torch.Generator().manual_seed(0))
        elif kind == "stream":
            def call():
                with torch.inference_mode():
                    return model.moog(video, state=state)
        else:
            def call():
                with torch.inference_mode():
                    return model.decode(predicted, size, size, 1, chunk_size=4096)
        if kind == "decode":
            pixels = call()[0]
            call.arch = {"params": sum(p.numel() for p in model.decoder.parameters()), "hidden": config.token_size,
                         "tokens": config.num_tokens, "output_shape": list(pixels.shape),
                         "output_dtype": str(pixels.dtype).replace("torch.", "")}
        else:  # the backbone (the official notebook's EvalWrapper has no pixel decoder either)
            with torch.inference_mode():
                features = model.moog.get_video_features(video, **({"state": state} if kind == "stream" else {
                    "generator": torch.Generator().manual_seed(0)})).features
            call.arch = {"params": sum(p.numel() for p in model.moog.parameters()), "hidden": config.token_size,
                         "tokens": config.num_tokens, "output_shape": list(features.shape),
                         "output_dtype": str(features.dtype).replace("torch.", "")}
        return call
    if workload.startswith("rvm"):
        from rep4d.configuration.configuration_rvm import RVMConfig
        from rep4d.modeling.modeling_rvm import RVMModel

        if spec["tiny"]:
            from rep4d.configuration.configuration_rvm import RVM_TRAIN_PRESETS

            config, size = RVMConfig(**RVM_TRAIN_PRESETS["tiny"]), 32
        else:
            config, size = RVMConfig.from_preset(workload.split("-")[1]), 256
        model = RVMModel(config).eval()
        frame = torch.rand(1, 3, size, size)
        with torch.inference_mode():
            state = model(frame).final_state

        def call():
            with torch.inference_mode():
                return model(frame, state=state)

        features = call().last_hidden_state[:, -1]  # (B, 1 + n, D): the frame's tokens, as the notebook's features
        call.arch = {"params": sum(p.numel() for p in model.parameters()), "hidden": config.hidden_size,
                     "tokens": (size // config.patch_size) ** 2, "output_shape": list(features.shape),
                     "output_dtype": str(features.dtype).replace("torch.", "")}
        return call
    if workload.startswith("train-"):
        from rep4d.training.objectives import METHODS
        from rep4d.training.pretraining_data import clip_geometry
        from rep4d.training.train import parse_args, parse_overrides

        method = workload.split("-", 1)[1]
        preset = "tiny" if spec["tiny"] else spec["train_preset"]
        args = parse_args(["--method", method, "--data", "synthetic", "--output", os.devnull, "--model-preset",
                           preset])
        args.config_overrides = parse_overrides(args.config)
        module = METHODS[method].build(args).train()
        frames, height, width = clip_geometry(module)
        pixels = torch.rand(2, frames, 3, height, width)
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)

        def call():
            loss = module(pixel_values=pixels, generator=torch.Generator().manual_seed(0)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return call
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")


def time_calls(call, repeats: int) -> list[float]:
    call()  # warm-up (oneDNN primitives, XLA compilation on the other side)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def run_torch_side(spec: dict) -> dict:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    call = build_torch_call(spec["workload"], spec["side"], spec)
    times = time_calls(call, spec["repeats"])
    return {"times": times, "threads": torch.get_num_threads(), "arch": getattr(call, "arch", None)}


# ----------------------------------------------------------------------------------------------------------------
# The official side: a JAX snippet run with --official-python (spec as JSON in argv[1], result JSON on stdout)
# ----------------------------------------------------------------------------------------------------------------

# The end of every official-side snippet: time `call` (already called once as a warm-up, giving `output` and `arch`)
# `repeats` times and print the side's JSON report.
TIME_AND_REPORT = r"""
times = []
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "jax": jax.__version__, "backend": jax.default_backend(),
                  "threads": os.cpu_count(), "arch": arch}))
"""

OFFICIAL_SNIPPET = r"""
import json, os, re, sys, time
spec = json.loads(sys.argv[1])
if spec.get("official_src"):
    sys.path.insert(0, spec["official_src"])
import jax, jax.numpy as jnp
from flax import linen as nn
from kauldron.modules import pos_embeddings
from kauldron.modules import vit as kd_vit
from representations4d.models import model as model_lib

# The official scaling4d_depth_demo colab's encoder and encoder2readout (its readout head left out: rep4d's side is
# get_video_features, the same (B, T, h*w, D) features the head reads).
shape = spec["shape"]
bf16 = spec["workload"].endswith("bf16")
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
num_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
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
""" + TIME_AND_REPORT


# The official MooG and RVM models exist only inside the official colab notebooks. This runner (run by
# --official-python) reads the notebook from --official-src at run time and executes the code cells that define the
# model (picked by their "# @title" line; no data download, checkpoint or visualisation cell), then builds the model
# as the notebook's "Define model" cell does, with random weights. The notebooks import visualisation-only modules
# (mediapy, tapnet's viz_utils, cv2, seaborn, sklearn, pandas, PIL) that the model cells never use: any of them that
# is not installed is replaced by an empty module so the notebook's imports cell runs unchanged. MooG's SRTDecoder
# reads the notebook's globals `height`/`width`: they are set to the frame size in the cells' namespace.
OFFICIAL_NOTEBOOK_SNIPPET = r"""
import importlib, json, os, sys, time, types
spec = json.loads(sys.argv[1])
src = spec["official_src"]
sys.path.insert(0, src)
for name in ("mediapy", "tapnet", "tapnet.utils", "tapnet.utils.viz_utils", "cv2", "seaborn", "sklearn", "pandas",
             "PIL", "PIL.Image", "scipy.io"):
    try:
        importlib.import_module(name)
    except ImportError:
        module = sys.modules[name] = types.ModuleType(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
import jax, jax.numpy as jnp

workload = spec["workload"]
family = workload.split("-")[0]
notebook = {"moog": "moog_inference_demo.ipynb", "rvm": "rvm_inference_demo.ipynb"}[family]
titles = {"moog": ["Imports", "Attention module", "Position embedding module", "Base module", "Model module",
                   "Readout module", "Define model"],
          "rvm": ["Imports", "Define model"]}[family]
cells = {}
for cell in json.load(open(os.path.join(src, "colabs", notebook)))["cells"]:
    text = "".join(cell["source"])
    if cell["cell_type"] == "code" and text.startswith("# @title "):
        cells.setdefault(text.split("\n", 1)[0][len("# @title "):].split(" {")[0].strip(), text)
size = spec["size"]
namespace = {"__name__": "official_notebook", "height": size, "width": size}
for title in titles:
    exec(compile(cells[title], f"{notebook}:{title}", "exec"), namespace)
key = jax.random.PRNGKey(0)
rngs = {"default": key}
if family == "moog":
    model = namespace["model"]  # the notebook's EvalWrapper(MooG(...)): encoder + predictor/corrector scan
    kind = workload.split("-")[1]
    frames = 8 if kind == "clip" else 1
    video = jax.random.uniform(jax.random.PRNGKey(1), (1, frames, size, size, 3), jnp.float32)
    tokens = int(model.pretrained_model.initializer.shape[0])
    hidden = int(model.pretrained_model.initializer.shape[1])
    if kind == "decode":  # the notebook MooG's SRTDecoder on one frame's states: every pixel a query, at once
        moog = model.pretrained_model
        params = moog.init({"params": key, "default": key}, video)
        states = jax.random.normal(jax.random.PRNGKey(2), (1, 1, tokens, hidden), jnp.float32)
        forward = jax.jit(lambda p, s, v: moog.apply(p, s, v, method=lambda m, s, v: m.decoder(inputs=s, targets=v)))
        compiled = forward.lower(params, states, video).compile()
        params_counted = params["params"]["decoder"]
        def call():
            return jax.block_until_ready(compiled(params, states, video))[0]
    else:
        params = model.init({"params": key, "default": key}, video)
        forward = jax.jit(lambda p, v, s: model.apply(p, v, s, rngs=rngs))
        state = model.apply(params, video[:, :1], rngs=rngs)["state"] if kind == "stream" else None
        compiled = forward.lower(params, video, state).compile()
        params_counted = params
        def call():
            return jax.block_until_ready(compiled(params, video, state))["features"]
else:
    preset = workload.split("-")[1]
    vit = namespace["VIT_SIZES"][preset.upper()]
    hidden, heads = vit[0], vit[3]
    # rep4d's RVM presets s/b: recurrent core of 4 cross-attention layers, 8 heads / MLP 2048 (S), 12 / 3072 (B);
    # the notebook builds L (core 16 heads, MLP 4096) the same way. Encoder only: the notebook's __call__ (feature
    # extraction) does not use the reconstruction decoder, so it is left out. dtype: float32 (the notebook passes
    # bfloat16 to the LayerNorms; rep4d's side is fp32).
    core = {"s": (8, 2048), "b": (12, 3072)}[preset]
    nn = namespace["nn"]
    model = namespace["VideoSiamMAE"](
        tokenizer=namespace["Tokenizer"](
            patch_embedding=namespace["PatchEmbedding"](patch_size=[1, 16, 16], num_features=hidden),
            posenc=namespace["SincosPosEmb"](base_token_shape=[16, 16]),
        ),
        encoder=namespace["Transformer"].from_variant_str(variant_str=preset.upper(), dtype=jnp.float32),
        rnn_core=namespace["GatedTransformerCore"](
            transformer=namespace["CrossAttentionTransformer"](
                num_layers=4, num_heads=core[0], num_feats=hidden, mlp_dim=core[1], dtype=jnp.float32),
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
    compiled = forward.lower(params, video, state).compile()
    tokens = (size // 16) ** 2
    params_counted = params
    def call():
        return jax.block_until_ready(compiled(params, video, state))["features"]
num_params = sum(x.size for x in jax.tree_util.tree_leaves(params_counted))
output = call()
arch = {"params": int(num_params), "hidden": hidden, "tokens": tokens, "output_shape": list(output.shape),
        "output_dtype": str(output.dtype)}
""" + TIME_AND_REPORT


# ----------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------


def run_side(side: str, workload: str, args) -> dict:
    spec = {"side": side, "workload": workload, "repeats": args.repeats, "tiny": args.tiny,
            "train_preset": args.train_preset, "threads": args.threads}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if side == "official":
        spec.update(shape=fourds_shape(spec), official_src=args.official_src)
        python = args.official_python or sys.executable
        snippet = OFFICIAL_SNIPPET
        if workload in OFFICIAL_NOTEBOOK_WORKLOADS:
            if not args.official_src:
                raise ValueError(f"{workload}: the official MooG/RVM models are read from the notebooks of "
                                 "--official-src DIR (colabs/*.ipynb); give it")
            snippet = OFFICIAL_NOTEBOOK_SNIPPET
            spec["size"] = 256 if workload.startswith("rvm") else int(workload.rsplit("-", 1)[1])
        command = [python, "-c", snippet, json.dumps(spec)]
        if args.threads:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip()
    else:
        command = [sys.executable, os.path.abspath(__file__), "--side-spec", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{side} side of {workload} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


ARCH_KEYS = ("params", "hidden", "layers", "tokens", "blocks_run", "output_shape")


def compare_arch(official: dict, ours: dict) -> str:
    """"same (...)" when both sides build and run the same architecture, else the differing fields."""
    keys = [key for key in ARCH_KEYS if key in official or key in ours]
    differs = [f"{key} {official.get(key)} vs {ours.get(key)}" for key in keys if official.get(key) != ours.get(key)]
    if differs:
        return "DIFFERS: " + "; ".join(differs)
    return ("same (" + ", ".join(f"{key} {ours[key]}" for key in keys) + f"; output dtype {official.get('output_dtype')}"
            f" / {ours.get('output_dtype')})")


def sides_for(workload: str, args) -> list[str]:
    sides = ["rep4d"]
    if workload in FOURDS and not args.no_videomae:
        sides.append("videomae")
    # The notebooks' MooG/RVM have no tiny variant: with --tiny their rows run rep4d only.
    if not args.rep4d_only and workload in OFFICIAL_WORKLOADS and not (args.tiny and workload in
                                                                       OFFICIAL_NOTEBOOK_WORKLOADS):
        sides.insert(0, "official")
    return sides


def format_seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-python", help="python with representations4d, jax and flax importable")
    parser.add_argument("--official-src", help="a checkout of google-deepmind/representations4d (put on sys.path)")
    parser.add_argument("--rep4d-only", action="store_true", help="time rep4d (and VideoMAE) only; ratios are n/a")
    parser.add_argument("--workloads", nargs="+", default=list(DEFAULT_WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--rounds", type=int, default=3, help="A B A B rounds (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per process after a warm-up (default 2)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and clips (smoke test, seconds)")
    parser.add_argument("--train-preset", default="small", help="training preset of the train-* workloads")
    parser.add_argument("--no-videomae", action="store_true", help="leave out the VideoMAE column")
    parser.add_argument("--threads", type=int, help="torch threads of the torch sides (default: torch's choice)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per side process (default 1800)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--side-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side_spec:
        print(json.dumps(run_torch_side(json.loads(args.side_spec))))
        return {}
    if not args.rep4d_only and not (args.official_python or args.official_src):
        raise ValueError("give --official-python PATH and/or --official-src DIR (the official representations4d), "
                         "or --rep4d-only")
    if args.official_src and not Path(args.official_src, "representations4d").is_dir():
        raise FileNotFoundError(f"--official-src {args.official_src} has no representations4d/ package folder")
    if args.rounds < 1 or args.repeats < 1:
        raise ValueError("--rounds and --repeats must be >= 1")

    import torch

    from rep4d.modeling.cpu_fast_paths import cpu_has_native_bf16

    native_bf16 = cpu_has_native_bf16()
    header = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "native_bf16": native_bf16,
              "rounds": args.rounds, "repeats": args.repeats, "tiny": args.tiny}
    print(f"CPU: {header['cpu']} ({header['cores']} cores); torch {torch.__version__}; "
          f"torch.ops.mkldnn._is_mkldnn_bf16_supported(): {native_bf16}", flush=True)
    rows = {}
    for workload in args.workloads:
        sides = sides_for(workload, args)
        per_round = {side: [] for side in sides}
        info, loads = {}, []
        for _ in range(args.rounds):
            for side in sides:  # A B A B: every round runs each side once, in a fresh process
                result = run_side(side, workload, args)
                per_round[side].append(statistics.median(result["times"]))
                info[side] = {k: v for k, v in result.items() if k != "times"}
                loads.append(os.getloadavg()[0])
        medians = {side: statistics.median(values) for side, values in per_round.items()}
        official, ours = medians.get("official"), medians["rep4d"]
        row = {"seconds": medians, "per_round": per_round,
               "ratio_official": official / ours if official else None,
               "ratio_videomae": medians["videomae"] / ours if "videomae" in medians else None}
        row["sides"] = info
        row["load_average_1min"] = [min(loads), max(loads)]  # sampled after each side process: other jobs' load
        if not args.tiny and "official" in info and info["official"].get("arch") and info["rep4d"].get("arch"):
            row["arch_check"] = compare_arch(info["official"]["arch"], info["rep4d"]["arch"])
            print(f"{workload:<16} architecture, official vs rep4d: {row['arch_check']}", flush=True)
        rows[workload] = row
        ratio = f"{row['ratio_official']:.2f}x" if row["ratio_official"] else "n/a"
        peer = f", VideoMAE {format_seconds(medians['videomae'])} ({row['ratio_videomae']:.2f}x)" \
            if row["ratio_videomae"] else ""
        print(f"{workload:<16} official {format_seconds(official):>10}  rep4d {format_seconds(ours):>10}  "
              f"ratio {ratio}{peer}  (load average {min(loads):.1f}-{max(loads):.1f})", flush=True)
        write_report(args.json, {**header, "workloads": rows})  # after every workload: a long run keeps its rows

    print("\n| workload | official JAX | rep4d | ratio (official / rep4d) | VideoMAE | ratio (VideoMAE / rep4d) |")
    print("|---|---|---|---|---|---|")
    for workload, row in rows.items():
        print(f"| {workload} | {format_cell(row, 'official')} | {format_cell(row, 'rep4d')} | "
              + (f"{row['ratio_official']:.2f}x" if row["ratio_official"] else "n/a") + " | "
              + format_cell(row, "videomae") + " | "
              + (f"{row['ratio_videomae']:.2f}x" if row["ratio_videomae"] else "n/a") + " |")
    print(f"\nCPU: {header['cpu']}; native bf16: {native_bf16}; medians of {args.rounds} alternated rounds "
          "(per-round medians in brackets)")
    report = {**header, "workloads": rows}
    write_report(args.json, report)
    return report


def format_cell(row: dict, side: str) -> str:
    """Median over rounds, then each round's median in brackets when there are several."""
    rounds = row["per_round"].get(side)
    if not rounds:
        return "n/a"
    if len(rounds) == 1:
        return format_seconds(row["seconds"][side])
    return f"{format_seconds(row['seconds'][side])} ({', '.join(format_seconds(value) for value in rounds)})"


def write_report(path: str | None, report: dict) -> None:
    if path:
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps(report, indent=2))
        os.replace(tmp, path)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
