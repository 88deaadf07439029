"""Side by side: the official representations4d JAX/Flax models vs rep4d (and transformers' VideoMAE), same shapes.

    # rep4d (and VideoMAE) only: ratios are "n/a"
    python benchmarks/bench_official.py --rep4d-only
    # against the official code: a python where jax, flax and kauldron import, and a representations4d checkout
    python benchmarks/bench_official.py --official-python /opt/r4d/bin/python --official-src ~/representations4d \
        --workloads 4ds-b-fp32 4ds-b-bf16 --rounds 3 --json official.json
    # the same as an AVX2-only CPU (no native bf16) would run it
    python benchmarks/bench_official.py ... --max-isa avx2
    # seconds-long smoke run (CI): every workload at tiny sizes (not comparable across sides: the official side's
    # smallest ViT is kauldron's "Ti", wider than rep4d's tiny training preset)
    python benchmarks/bench_official.py --rep4d-only --tiny --rounds 1 --repeats 1

This script installs nothing. Each side runs in its own process (``--side-spec`` of this script for rep4d and
VideoMAE, a script of ``benchmarks/official_jax/`` run by ``--official-python`` for the official code), one warm-up
call then ``--repeats`` timed calls, median. The sides are alternated A B A B over ``--rounds`` rounds and the median
over rounds is reported, so background load hits every side alike. Ratio = official time / rep4d time (> 1: rep4d is
faster); VideoMAE = VideoMAE time / rep4d time. The CPU name, ATen's CPU capability and
``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` are printed: bf16 runs natively only on CPUs with AMX /
avx512_bf16; elsewhere rep4d's precision policy computes bf16 models' matmuls in fp32 (``modeling/cpu_fast_paths.py``).

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
* Every workload but 4DS's also runs in bf16 with the suffix ``-bf16`` (``rvm-b-stream-bf16``, ``train-4ds-bf16``):
  rep4d and VideoMAE under CPU autocast (rep4d's precision policy applies: on a CPU without native bf16 its matmuls
  and convolutions compute in fp32, and training trains in fp32 as ``rep4d train --mixed-precision bf16`` does there);
  the official side with bf16 parameters, inputs and state (training: JAX mixed precision, fp32 master parameters,
  ``official_jax/_side.py: adamw_step_call``).
* ``train-4ds``, ``train-rvm``, ``train-moog``: one training step (forward, loss, backward, AdamW update with lr 1e-4
  and weight decay 0.01) of the pretraining objective at a training preset of ``rep4d.configuration``
  (``--train-preset``, default ``small``; ``--tiny``: ``tiny``), batch 2. ``train-4ds`` also runs transformers'
  ``VideoMAEForPreTraining`` with the same ViT and mask ratio (its decoder sized as 4DS's decoding blocks).

The official side of each workload is a script of ``benchmarks/official_jax/`` (``OFFICIAL_SCRIPTS``) run by
``--official-python``; nothing of the official code is copied here, it is imported from ``--official-src`` or, for
models that exist only in the colab notebooks, the notebook's own model cells are executed at run time:

* 4DS (``fourds_encoder.py``): the ``scaling4d_depth_demo`` colab's encoder and ``EncoderToReadout`` from the
  ``representations4d`` package.
* MooG clip / stream and RVM-S / B stream (``notebook_models.py``): the models of ``colabs/moog_inference_demo.ipynb``
  (``EvalWrapper(MooG(...))``, the released config; rep4d's side is ``MooGModel``, the backbone without the pixel
  decoder, which the notebook's model does not run either) and ``colabs/rvm_inference_demo.ipynb`` (``VideoSiamMAE``
  built as its "Define model" cell builds RVM-L, with the S / B sizes of rep4d's presets, fp32, without the
  reconstruction decoder, unused per frame).
* MooG decode and training (``moog_package.py``): the official MooG package (``moog/modules.py``, the classes
  ``moog/configs/movi.py`` trains): the released decoder is ``SRTDecoder`` with a cross-attention-only
  ``ImprovedTransformer``; the training step is ``Moog`` at rep4d's training preset with the config's L2 loss.
* 4DS and RVM training (``train_fourds.py``, ``train_rvm.py``): no training code is released for them; the step is
  built from the official modules (4DS: the package's tokenizer and transformer blocks with SimpleMAE's masking,
  decoding tokens and pixel decoder; RVM: the notebook's ``VideoSiamMAE.reconstruct``) with the loss rep4d uses,
  written in JAX, and ``optax.adamw``, all under one ``jax.jit``.

Every side reports its architecture (parameters, width, tokens, blocks run, output shape...) and the script prints
``same`` or what ``DIFFERS`` per row. ``--max-isa avx2`` caps every side's instruction set (oneDNN, MKL and ATen on
the torch sides, XLA on the official side) to run as an AVX2-only CPU without native bf16 would, on a newer CPU.
The notebook rows and the decode rows have no tiny variant: with ``--tiny`` they run rep4d only.
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
# Every other workload runs in float32 as named, and in bf16 with the suffix "-bf16" (split_precision).
FP32_WORKLOADS = ("moog-clip-128", "moog-clip-256", "moog-stream-128", "moog-stream-256", "moog-decode-128",
                  "moog-decode-256", "rvm-s-stream", "rvm-b-stream", "train-4ds", "train-rvm", "train-moog")
WORKLOADS = (*FOURDS, *FP32_WORKLOADS, *(f"{workload}-bf16" for workload in FP32_WORKLOADS))
DEFAULT_WORKLOADS = ("4ds-b-fp32", "4ds-b-bf16", "moog-clip-128", "moog-stream-128", "moog-decode-128",
                     "rvm-s-stream", "rvm-b-stream", "train-4ds", "train-rvm", "train-moog")
# transformers' VideoMAE runs beside rep4d on these (the same ViT: inference, and pretraining at 4DS's mask ratio)
VIDEOMAE_WORKLOADS = ("4ds-b", "train-4ds")
# MooG and RVM inference: the models defined in the official notebooks (official_jax/notebook_models.py).
NOTEBOOK_WORKLOADS = {"moog-clip-128", "moog-clip-256", "moog-stream-128", "moog-stream-256", "rvm-s-stream",
                      "rvm-b-stream"}


def split_precision(workload: str) -> tuple[str, bool]:
    """(the workload without its precision suffix, whether it runs in bf16): ``rvm-b-stream-bf16`` -> (``rvm-b-stream``,
    True), ``4ds-b-fp32`` -> (``4ds-b``, False)."""
    if workload.endswith("-bf16"):
        return workload[: -len("-bf16")], True
    return workload.removesuffix("-fp32"), False


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
    workload, bf16 = split_precision(workload)

    def autocast():  # bf16 workloads: CPU autocast, as a user runs a bf16 model (rep4d's precision policy applies)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    if workload == "4ds-b":
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
            from transformers import VideoMAEModel

            model = VideoMAEModel(videomae_config(config, num_hidden_layers=blocks, use_mean_pooling=False)).eval()
            layers = model.encoder.layer
        else:
            layers = model.encoder.layers
        ran = set()
        for index, layer in enumerate(layers):
            layer.register_forward_hook(lambda module, args, output, index=index: ran.add(index))

        def call():
            with torch.inference_mode(), autocast():
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
    if side != "rep4d" and workload not in VIDEOMAE_WORKLOADS:
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
                with torch.inference_mode(), autocast():
                    return model.moog(video, generator=torch.Generator().manual_seed(0))
        elif kind == "stream":
            def call():
                with torch.inference_mode(), autocast():
                    return model.moog(video, state=state)
        else:
            def call():
                with torch.inference_mode(), autocast():
                    return model.decode(predicted, size, size, 1, chunk_size=4096)
        if kind == "decode":
            pixels = call()[0]
            call.arch = {"params": sum(p.numel() for p in model.decoder.parameters()), "hidden": config.token_size,
                         "tokens": config.num_tokens, "output_shape": list(pixels.shape),
                         "output_dtype": str(pixels.dtype).replace("torch.", "")}
        else:  # the backbone (the official notebook's EvalWrapper has no pixel decoder either)
            with torch.inference_mode(), autocast():
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
            with torch.inference_mode(), autocast():
                return model(frame, state=state)

        features = call().last_hidden_state[:, -1]  # (B, 1 + n, D): the frame's tokens, as the notebook's features
        call.arch = {"params": sum(p.numel() for p in model.parameters()), "hidden": config.hidden_size,
                     "tokens": (size // config.patch_size) ** 2, "output_shape": list(features.shape),
                     "output_dtype": str(features.dtype).replace("torch.", "")}
        return call
    if workload.startswith("train-"):
        from rep4d.training.launch import resolve_mixed_precision
        from rep4d.training.optimization import adamw

        module, setup = train_module(workload, spec)
        pixels = torch.rand(setup["batch"], *setup["clip"][:1], 3, *setup["clip"][1:])
        loss_of = lambda: module(pixel_values=pixels, generator=torch.Generator().manual_seed(0)).loss  # noqa: E731
        if side == "videomae":  # VideoMAE pretraining of the same ViT at the same mask ratio (its own decoder)
            module, loss_of = videomae_pretraining(module.config, pixels)
        # bf16: the forward under CPU autocast, as `rep4d train --mixed-precision bf16` runs it, where the CPU runs
        # bf16 natively; elsewhere `rep4d train` trains in float32 (resolve_mixed_precision) and so does this row.
        train_bf16 = resolve_mixed_precision("bf16" if bf16 else "no", device="cpu") == "bf16"

        def forward():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=train_bf16):
                return loss_of()
        # rep4d's optimizer builder (the fused AdamW kernel, as `rep4d train` uses it); the peer gets the same one
        optimizer = adamw([{"params": [p for p in module.parameters() if p.requires_grad]}],
                          lr=setup["learning_rate"], weight_decay=setup["weight_decay"])

        def call():
            loss = forward()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        loss = call()
        call.arch = {"params": sum(p.numel() for p in module.parameters() if p.requires_grad), "bf16": train_bf16,
                     "hidden": setup["config"]["hidden_size" if "hidden_size" in setup["config"] else "token_size"],
                     "clip": setup["clip"], "batch": setup["batch"], "output_shape": list(loss.shape),
                     "output_dtype": str(loss.dtype).replace("torch.", "")}
        return call
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")



def videomae_config(config, **overrides):
    """transformers' ``VideoMAEConfig`` of the ViT of a 4DS ``config``: its clip, tubelets, width, depth, heads and MLP
    (SDPA attention), with ``overrides``."""
    from transformers import VideoMAEConfig

    values = dict(image_size=config.image_size[0], patch_size=config.tubelet_size[1], num_frames=config.num_frames,
                  tubelet_size=config.tubelet_size[0], hidden_size=config.hidden_size,
                  num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                  intermediate_size=config.intermediate_size, attn_implementation="sdpa")
    return VideoMAEConfig(**{**values, **overrides})


def videomae_pretraining(config, pixels):
    """transformers' ``VideoMAEForPreTraining`` with 4DS's ViT size, tubelets and mask ratio, and a zero-argument
    forward returning its loss on ``pixels`` (``norm_pix_loss=False``, raw pixels as SimpleMAE).

    The closest peer of SimpleMAE: VideoMAE runs its ``L`` encoder blocks on the kept tubelets and a separate decoder
    on all of them; SimpleMAE runs ``L - N`` blocks on the kept tubelets and its last ``N`` on the kept tubelets plus
    one decoding token per tubelet. VideoMAE's decoder here has ``N`` blocks of 4DS's width, heads and MLP, so both
    do nearly the same FLOPs (VideoMAE's default 384-wide decoder would be larger than a small 4DS model).
    """
    import torch
    from transformers import VideoMAEForPreTraining

    model = VideoMAEForPreTraining(videomae_config(
        config, decoder_hidden_size=config.hidden_size, decoder_num_hidden_layers=config.decoder_num_layers,
        decoder_num_attention_heads=config.num_attention_heads, decoder_intermediate_size=config.intermediate_size,
        norm_pix_loss=False,
    )).train()
    tokens = math.prod(n // p for n, p in zip((config.num_frames, *config.image_size), config.tubelet_size))
    kept = max(1, round(tokens * (1 - config.mask_ratio)))
    generator = torch.Generator().manual_seed(0)
    masks = torch.stack([torch.randperm(tokens, generator=generator) >= kept for _ in range(pixels.shape[0])])
    return model, lambda: model(pixels, bool_masked_pos=masks).loss


TRAIN_BATCH = 2


def train_module(workload: str, spec: dict):
    """The rep4d training module of a ``train-*`` workload and the setup both sides share: the model config (as a
    dict), clip (frames, height, width), batch, the objective's settings and AdamW's."""
    from rep4d.training.objectives import METHODS
    from rep4d.training.pretraining_data import clip_geometry
    from rep4d.training.train import parse_args, parse_overrides

    method = workload.split("-", 1)[1]
    preset = "tiny" if spec["tiny"] else spec["train_preset"]
    args = parse_args(["--method", method, "--data", "synthetic", "--output", os.devnull, "--model-preset", preset])
    args.config_overrides = parse_overrides(args.config)
    module = METHODS[method].build(args).train()
    config = getattr(module, "model", module).config if method == "rvm" else module.config
    setup = {"method": method, "preset": preset, "config": config.to_dict(), "clip": list(clip_geometry(module)),
             "batch": TRAIN_BATCH, "learning_rate": 1e-4, "weight_decay": 0.01,  # torch.optim.AdamW's defaults
             "rvm_source_frames": args.rvm_source_frames, "rvm_target_frames": args.rvm_target_frames}
    return module, setup


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
# The official side: a script of benchmarks/official_jax/ run by --official-python (spec as JSON in argv[1], result
# JSON on stdout; see official_jax/_side.py)
# ----------------------------------------------------------------------------------------------------------------

OFFICIAL_DIR = Path(__file__).resolve().parent / "official_jax"
# workload -> the official-side script that builds and times it
OFFICIAL_SCRIPTS = {  # by the workload without its precision suffix (split_precision)
    "4ds-b": "fourds_encoder.py",
    **{workload: "notebook_models.py" for workload in ("moog-clip-128", "moog-clip-256", "moog-stream-128",
                                                       "moog-stream-256", "rvm-s-stream", "rvm-b-stream")},
    "moog-decode-128": "moog_package.py", "moog-decode-256": "moog_package.py", "train-moog": "moog_package.py",
    "train-4ds": "train_fourds.py", "train-rvm": "train_rvm.py",
}


# ----------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------

CPU_PROBE = """
import json, torch
from rep4d.modeling.cpu_fast_paths import cpu_has_native_bf16
print(json.dumps({"torch": torch.__version__, "native_bf16": cpu_has_native_bf16(),
                  "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def isa_env(max_isa: str | None, side: str) -> dict:
    """Environment variables that cap a side's instruction set at ``max_isa`` (``avx2``: an AVX2-only CPU such as the
    AMD EPYCs without native bf16, emulated on a newer CPU; every library that picks kernels at run time is capped:
    oneDNN, MKL and ATen's vectorised kernels on the torch sides, XLA's code generation on the official side)."""
    if not max_isa:
        return {}
    if side == "official":
        flags = os.environ.get("XLA_FLAGS", "")
        return {"XLA_FLAGS": f"{flags} --xla_cpu_max_isa={max_isa.upper()}".strip()}
    return {"ONEDNN_MAX_CPU_ISA": max_isa.upper(), "MKL_ENABLE_INSTRUCTIONS": max_isa.upper(),
            "ATEN_CPU_CAPABILITY": max_isa.lower()}



def run_side(side: str, workload: str, args) -> dict:
    spec = {"side": side, "workload": workload, "repeats": args.repeats, "tiny": args.tiny,
            "train_preset": args.train_preset, "threads": args.threads}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           **isa_env(args.max_isa, "official" if side == "official" else "torch")}
    if side == "official":
        workload, spec["bf16"] = split_precision(workload)
        spec.update(workload=workload, shape=fourds_shape(spec), official_src=args.official_src)
        if workload in NOTEBOOK_WORKLOADS and not args.official_src:
            raise ValueError(f"{workload}: the official MooG/RVM models are read from the notebooks of "
                             "--official-src DIR (colabs/*.ipynb); give it")
        if workload.startswith(("moog", "rvm")):
            spec["size"] = 256 if workload.startswith("rvm") else int(workload.rsplit("-", 1)[1])
        if workload.startswith("moog-decode"):
            from rep4d.configuration.configuration_moog import MooGConfig

            spec["config"] = MooGConfig.from_preset("released").to_dict()
        if workload.startswith("train-"):
            spec["train"] = train_module(workload, spec)[1]
        command = [args.official_python or sys.executable, str(OFFICIAL_DIR / OFFICIAL_SCRIPTS[workload]),
                   json.dumps(spec)]
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
    workload = split_precision(workload)[0]
    if workload in VIDEOMAE_WORKLOADS and not args.no_videomae:
        sides.append("videomae")
    # The notebooks' MooG/RVM and the released MooG decoder have no tiny variant: with --tiny they run rep4d only.
    if not args.rep4d_only and not (args.tiny and (workload in NOTEBOOK_WORKLOADS or "decode" in workload)):
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
    parser.add_argument("--workloads", nargs="+", default=list(DEFAULT_WORKLOADS), choices=WORKLOADS,
                        metavar="WORKLOAD", help=f"any of {', '.join(WORKLOADS)} (default: "
                        f"{' '.join(DEFAULT_WORKLOADS)})")
    parser.add_argument("--rounds", type=int, default=3, help="A B A B rounds (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per process after a warm-up (default 2)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and clips (smoke test, seconds)")
    parser.add_argument("--train-preset", default="small", help="training preset of the train-* workloads")
    parser.add_argument("--no-videomae", action="store_true", help="leave out the VideoMAE column")
    parser.add_argument("--max-isa", choices=["avx2"], help="cap every side's instruction set (avx2: run as an "
                        "AVX2-only CPU without native bf16 would; oneDNN/MKL/ATen and XLA are capped)")
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

    # What the side processes see (with --max-isa, an instruction-set-capped CPU): asked in a child with their env.
    probe = subprocess.run([sys.executable, "-c", CPU_PROBE], capture_output=True, text=True, check=True,
                           env={**os.environ, **isa_env(args.max_isa, "torch")})
    cpu = json.loads(probe.stdout.strip().splitlines()[-1])
    native_bf16 = cpu["native_bf16"]
    header = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": cpu["torch"], "native_bf16": native_bf16,
              "cpu_capability": cpu["capability"], "max_isa": args.max_isa, "rounds": args.rounds,
              "repeats": args.repeats, "tiny": args.tiny}
    capped = f"; instruction set capped to {args.max_isa.upper()} (--max-isa)" if args.max_isa else ""
    print(f"CPU: {header['cpu']} ({header['cores']} cores){capped}; torch {cpu['torch']} (CPU capability "
          f"{cpu['capability']}); torch.ops.mkldnn._is_mkldnn_bf16_supported(): {native_bf16}", flush=True)
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
            print(f"{workload:<20} architecture, official vs rep4d: {row['arch_check']}", flush=True)
        rows[workload] = row
        ratio = f"{row['ratio_official']:.2f}x" if row["ratio_official"] else "n/a"
        peer = f", VideoMAE {format_seconds(medians['videomae'])} ({row['ratio_videomae']:.2f}x)" \
            if row["ratio_videomae"] else ""
        print(f"{workload:<20} official {format_seconds(official):>10}  rep4d {format_seconds(ours):>10}  "
              f"ratio {ratio}{peer}  (load average {min(loads):.1f}-{max(loads):.1f})", flush=True)
        write_report(args.json, {**header, "workloads": rows})  # after every workload: a long run keeps its rows

    print("\n| workload | official JAX | rep4d | ratio (official / rep4d) | VideoMAE | ratio (VideoMAE / rep4d) |")
    print("|---|---|---|---|---|---|")
    for workload, row in rows.items():
        print(f"| {workload} | {format_cell(row, 'official')} | {format_cell(row, 'rep4d')} | "
              + (f"{row['ratio_official']:.2f}x" if row["ratio_official"] else "n/a") + " | "
              + format_cell(row, "videomae") + " | "
              + (f"{row['ratio_videomae']:.2f}x" if row["ratio_videomae"] else "n/a") + " |")
    print(f"\nCPU: {header['cpu']}{capped}; native bf16: {native_bf16}; medians of {args.rounds} alternated rounds "
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
