"""GPU readiness check (``scripts/gpu_check.sh`` runs this): parity, bf16 attention, every training objective under
DDP / FSDP2 / DeepSpeed, and throughput + model FLOPs utilisation next to transformers' VideoMAE.

    python benchmarks/gpu_check.py                  # cuda: the full check (under 8 minutes on one H100)
    python benchmarks/gpu_check.py --device cpu     # the same steps at tiny sizes (the CI smoke test)
    python benchmarks/gpu_check.py --json gpu_check.json --only parity bf16

Steps (each prints one ``PASS``/``FAIL``/``SKIP`` line; the exit status is 1 if any step failed):

* ``parity``: the fixture case (``tests/fixtures/4ds/tiny_backbone`` by default) through the parity machinery on the
  CPU (``rep4d.parity.run_parity``), then the same converted model on ``--device``: its features must match the
  reference arrays within the fixture's own tolerances, and the CPU outputs.
* ``bf16``: 4DS forward in bf16 autocast with SDPA against fp32 (relative L2 of ``last_hidden_state``); on CUDA also
  forced to the flash-attention SDPA backend. On a CPU without native bf16
  (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` False) the bf16 step is skipped: the library runs fp32 there.
* ``ddp``: one optimizer step of each objective (``--method 4ds|distill|moog|rvm``, tiny preset) through
  ``rep4d.training.train`` under ``torchrun --nproc-per-node 1`` (a real process group: gloo on CPU, NCCL on CUDA).
* ``fsdp2``: one step of tiny 4DS with ``apply_fsdp2`` (raw ``fully_shard``, world size 1) equals the unsharded step;
  on CUDA also ``accelerate launch`` with ``training/configs/accelerate_fsdp2.yaml`` (1 process).
* ``deepspeed``: ZeRO-2 and ZeRO-3 (``accelerate_ds_zero{2,3}.yaml``, 1 process) when DeepSpeed is installed and a
  GPU is present; otherwise SKIP with the reason printed.
* ``throughput``: clips/s, FLOP/s and MFU of 4DS inference (B on CUDA, bf16) and SimpleMAE training steps, next to
  VideoMAE (same ViT size and token count: ``VideoMAEModel`` / ``VideoMAEForPreTraining``). FLOPs are counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on one call; MFU = achieved FLOP/s / a measured dense matmul peak of
  the same dtype (and / the datasheet peak on a known GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("parity", "bf16", "ddp", "fsdp2", "deepspeed", "throughput")
METHODS = ("4ds", "distill", "moog", "rvm")
# Dense bf16 datasheet peaks (no sparsity), FLOP/s.
DATASHEET_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def native_bf16(device: str) -> bool:
    import torch

    from rep4d.modeling.cpu_fast_paths import cpu_has_native_bf16

    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def relative_l2(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ----------------------------------------------------------------------------------------------------------------
# Steps: each returns a dict with "status" in PASS / FAIL / SKIP and a one-line "detail".
# ----------------------------------------------------------------------------------------------------------------


def step_parity(args) -> dict:
    import numpy as np
    import torch

    from rep4d.conversion import load_converted_model, plan_conversion
    from rep4d.modeling.convert_fourds import FOURDS_CONVERTER
    from rep4d.parity import compare, load_case_arrays, run_parity
    from rep4d.parity.fourds import config_from_case

    case_dir = Path(args.case)
    if not (case_dir / "case.json").is_file():
        raise FileNotFoundError(f"--case {case_dir} is not a fixture case (no case.json)")
    report = run_parity(case_dir)
    if not report.ok:
        return {"status": "FAIL", "detail": f"CPU parity of {case_dir.name} fails"}
    case = json.loads((case_dir / "case.json").read_text())
    params = load_case_arrays(case_dir / "params.npz")
    reference = load_case_arrays(case_dir / "outputs.npz")
    video = load_case_arrays(case_dir / "inputs.npz")["video"]
    shapes = {key: tuple(value.shape) for key, value in params.items()}
    config = config_from_case(case)
    model = load_converted_model(plan_conversion(shapes, FOURDS_CONVERTER, "backbone", config=config), params).eval()
    pixels = torch.from_numpy(video).permute(0, 1, 4, 2, 3).contiguous()
    with torch.no_grad():
        cpu = model(pixels)
        model.to(args.device)
        dev = model(pixels.to(args.device))
    errors, ok = {}, True
    for key in ("last_block_output", "readout_features"):
        if key not in reference:
            continue
        tolerance = report.results[key].tolerance
        value = getattr(dev, "last_hidden_state" if key == "last_block_output" else key)
        result = compare(value.float().cpu().numpy(), reference[key], tolerance)
        cpu_value = getattr(cpu, "last_hidden_state" if key == "last_block_output" else key)
        errors[key] = {"vs_reference": result.max_abs_error,
                       "vs_cpu": float(np.abs(value.cpu().numpy() - cpu_value.numpy()).max())}
        ok &= result.ok
    detail = ", ".join(f"{k}: max|err| {v['vs_reference']:.2e} vs reference, {v['vs_cpu']:.2e} vs CPU"
                       for k, v in errors.items())
    return {"status": "PASS" if ok and errors else "FAIL", "detail": f"{case_dir.name} on {args.device}: {detail}",
            "errors": errors}


def fourds_for_check(args, pretraining: bool = False):
    from rep4d.training.objectives import fourds_config

    preset = "b" if args.device == "cuda" else "tiny"
    config = fourds_config(preset, {"num_frames": 16, "image_size": [224, 224]} if preset == "b" else {})
    if pretraining:
        from rep4d.modeling.modeling_fourds import FourDSForPreTraining

        return FourDSForPreTraining(config)
    from rep4d.modeling.modeling_fourds import FourDSModel

    return FourDSModel(config)


def step_bf16(args) -> dict:
    import torch

    if not native_bf16(args.device):
        return {"status": "SKIP", "detail": f"{args.device} has no native bf16 "
                "(torch.ops.mkldnn._is_mkldnn_bf16_supported() is False): fp32 is the policy there"}
    torch.manual_seed(0)
    model = fourds_for_check(args).to(args.device).eval()
    model.set_attn_implementation("sdpa")
    config = model.config
    pixels = torch.rand(2, config.num_frames, 3, *config.image_size, device=args.device)
    with torch.inference_mode():
        fp32 = model(pixels).last_hidden_state
        with torch.autocast(args.device, dtype=torch.bfloat16):
            bf16 = model(pixels).last_hidden_state
            flash = None
            if args.device == "cuda":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    flash = model(pixels).last_hidden_state
    errors = {"sdpa_bf16": relative_l2(bf16, fp32)}
    if flash is not None:
        errors["flash_bf16"] = relative_l2(flash, fp32)
    ok = all(error < 0.03 and error == error for error in errors.values())
    detail = ", ".join(f"{k} rel. L2 vs fp32 {v:.2%}" for k, v in errors.items()) + " (limit 3%)"
    return {"status": "PASS" if ok else "FAIL", "detail": detail, "errors": errors}


def train_arguments(method: str, output: Path, steps: int = 1) -> list[str]:
    arguments = ["--method", method, "--data", "synthetic", "--model-preset", "tiny", "--synthetic-clips", "4",
                 "--batch-size", "2", "--max-steps", str(steps), "--warmup-steps", "1", "--log-steps", "1",
                 "--quiet", "--report-to", "none", "--no-final", "--output", str(output)]
    if method == "distill":
        arguments += ["--teacher-preset", "tiny"]
    return arguments


def child_env(args) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                           os.environ.get("PYTHONPATH")]))}
    if args.device == "cpu":
        env.update(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    return env


def run_child(command: list[str], args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=child_env(args), cwd=REPO, capture_output=True, text=True, timeout=timeout)


DDP_SCRIPT = r"""
import json, sys
import torch.distributed as dist
from rep4d.training.checkpointing import read_metrics
from rep4d.training.train import parse_args, train
out, methods = sys.argv[1], sys.argv[2:]
results = {}
for method in methods:
    result = train(parse_args(json.loads(open(f"{out}/{method}.json").read())))
    results[method] = {"losses": result.losses, "world_size": dist.get_world_size() if dist.is_initialized() else 1,
                       "backend": dist.get_backend() if dist.is_initialized() else None}
open(f"{out}/ddp_results.json", "w").write(json.dumps(results))
"""


def step_ddp(args) -> dict:
    import math

    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            Path(tmp, f"{method}.json").write_text(json.dumps(train_arguments(method, Path(tmp, method))))
        script = Path(tmp, "ddp_check.py")
        script.write_text(DDP_SCRIPT)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                   str(script), tmp, *METHODS]
        result = run_child(command, args)
        if result.returncode != 0:
            return {"status": "FAIL", "detail": "torchrun failed: " + (result.stderr or result.stdout)[-1500:]}
        results = json.loads(Path(tmp, "ddp_results.json").read_text())
    ok = all(len(r["losses"]) == 1 and math.isfinite(r["losses"][0]) and r["world_size"] == 1
             and r["backend"] is not None for r in results.values())
    detail = ", ".join(f"{m} loss {r['losses'][0]:.4f}" for m, r in results.items())
    backend = next(iter(results.values()))["backend"]
    return {"status": "PASS" if ok else "FAIL", "detail": f"torchrun 1 process ({backend}): {detail}",
            "results": results}


FSDP2_SCRIPT = r"""
import json, sys, torch, torch.distributed as dist
from torch.distributed.tensor import DTensor
from rep4d.modeling.modeling_fourds import FourDSForPreTraining
from rep4d.training.launch import apply_fsdp2
from rep4d.training.objectives import fourds_config
device = sys.argv[2]
dist.init_process_group("nccl" if device == "cuda" else "gloo")
torch.manual_seed(0)
model = FourDSForPreTraining(fourds_config("tiny", {"mask_ratio": 0.0})).to(device)
reference = FourDSForPreTraining(model.config).to(device)
reference.load_state_dict(model.state_dict())
video = torch.rand(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
apply_fsdp2(model)
losses = []
for net in (model, reference):
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(2):
        loss = net(video).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
weight = model.fourds.encoder.layers[0].mlp.dense_in.weight
json.dump({"sharded": losses[:2], "reference": losses[2:], "dtensor": isinstance(weight, DTensor)},
          open(sys.argv[1], "w"))
dist.destroy_process_group()
"""


def step_fsdp2(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "fsdp2_check.py")
        script.write_text(FSDP2_SCRIPT)
        out = Path(tmp, "fsdp2.json")
        result = run_child([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                            str(script), str(out), args.device], args)
        if result.returncode != 0:
            return {"status": "FAIL", "detail": "fully_shard run failed: " + (result.stderr or result.stdout)[-1500:]}
        values = json.loads(out.read_text())
        error = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(values["sharded"], values["reference"]))
        ok = values["dtensor"] and error < 1e-4
        detail = f"fully_shard: 2 AdamW steps, losses {values['sharded']} vs unsharded (max rel. diff {error:.1e})"
        if args.device == "cuda":
            launched = accelerate_launch("accelerate_fsdp2.yaml", "4ds", Path(tmp, "accel"), args)
            ok &= launched["ok"]
            detail += f"; accelerate FSDP2 plugin: {launched['detail']}"
    return {"status": "PASS" if ok else "FAIL", "detail": detail}


def accelerate_launch(config_file: str, method: str, output: Path, args) -> dict:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "training" / "configs" / config_file), "--num_processes", "1", "--num_machines", "1",
               "-m", "rep4d.training.train", *train_arguments(method, output, steps=2)]
    result = run_child(command, args)
    if result.returncode != 0:
        return {"ok": False, "detail": f"{config_file} failed: " + (result.stderr or result.stdout)[-1200:]}
    from rep4d.training.checkpointing import read_metrics

    losses = [float(row["loss"]) for row in read_metrics(output / "metrics.csv")]
    return {"ok": len(losses) == 2, "detail": f"{config_file} {method} losses {losses}"}


def step_deepspeed(args) -> dict:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        return {"status": "SKIP", "detail": "DeepSpeed is not installed (pip install deepspeed): ZeRO-2/3 not checked"}
    if args.device != "cuda":
        return {"status": "SKIP", "detail": "DeepSpeed is installed but ZeRO-2/3 need a GPU: not checked on CPU"}
    details, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for stage, method in ((2, "rvm"), (3, "4ds")):
            launched = accelerate_launch(f"accelerate_ds_zero{stage}.yaml", method, Path(tmp, f"zero{stage}"), args)
            ok &= launched["ok"]
            details.append(launched["detail"])
    return {"status": "PASS" if ok else "FAIL", "detail": "; ".join(details)}


def measured_peak(device: str, dtype) -> float:
    import torch

    size = 8192 if device == "cuda" else 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(5 if device == "cuda" else 2):
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def flop_rate(tflops: float) -> str:
    return f"{tflops:.2f} TFLOP/s" if tflops >= 1 else f"{tflops * 1e3:.1f} GFLOP/s"


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn, device: str, repeats: int) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def step_throughput(args) -> dict:
    import torch
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEModel

    device = args.device
    use_bf16 = native_bf16(device)
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    peak = measured_peak(device, dtype)
    datasheet = None
    if device == "cuda":
        name = torch.cuda.get_device_name()
        datasheet = next((v for k, v in DATASHEET_BF16.items() if k in name), None) if use_bf16 else None
    torch.manual_seed(0)
    batch = args.batch or (8 if device == "cuda" else 2)
    repeats = 10 if device == "cuda" else 2
    fourds = fourds_for_check(args).to(device).eval()
    config = fourds.config

    def peer_config(**extra):
        return VideoMAEConfig(image_size=config.image_size[0], patch_size=config.tubelet_size[1],
                              num_frames=config.num_frames, tubelet_size=config.tubelet_size[0],
                              hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
                              num_attention_heads=config.num_attention_heads,
                              intermediate_size=config.intermediate_size, attn_implementation="sdpa", **extra)

    videomae = VideoMAEModel(peer_config(use_mean_pooling=False)).to(device).eval()
    pixels = torch.rand(batch, config.num_frames, 3, *config.image_size, device=device)
    rows = {}

    def infer(model):
        def call():
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
                model(pixels)
        return call

    for name, model in (("4ds_inference", fourds), ("videomae_inference", videomae)):
        flops = count_flops(infer(model))
        seconds = timed(infer(model), device, repeats)
        rows[name] = {"s": seconds, "clips_per_s": batch / seconds, "tflops": flops / seconds / 1e12,
                      "mfu": flops / seconds / peak}
    del fourds, videomae

    pretrain = fourds_for_check(args, pretraining=True).to(device).train()
    tokens = pretrain.fourds.config.num_tokens
    mae_peer = VideoMAEForPreTraining(peer_config(norm_pix_loss=False)).to(device).train()
    kept = max(1, round(tokens * (1 - pretrain.config.mask_ratio)))
    masks = torch.zeros(batch, tokens, dtype=torch.bool, device=device)
    for row in range(batch):
        masks[row, torch.randperm(tokens, device=device)[: tokens - kept]] = True

    def train_step(model, call):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
                loss = call(model)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    steps = {"4ds_simplemae_train": train_step(pretrain, lambda m: m(pixels).loss),
             "videomae_pretrain_train": train_step(mae_peer, lambda m: m(pixels, bool_masked_pos=masks).loss)}
    for name, step in steps.items():
        flops = count_flops(step)
        seconds = timed(step, device, max(1, repeats // 2))
        rows[name] = {"s": seconds, "clips_per_s": batch / seconds, "tflops": flops / seconds / 1e12,
                      "mfu": flops / seconds / peak}
    for row in rows.values():
        if datasheet:
            row["mfu_datasheet"] = row["tflops"] * 1e12 / datasheet
    ratio_inf = rows["videomae_inference"]["s"] / rows["4ds_inference"]["s"]
    lines = [f"{n}: {r['clips_per_s']:.2f} clips/s, {flop_rate(r['tflops'])}, MFU {r['mfu']:.1%}"
             + (f" ({r['mfu_datasheet']:.0%} of datasheet)" if "mfu_datasheet" in r else "") for n, r in rows.items()]
    ok = all(r["s"] > 0 and r["tflops"] > 0 for r in rows.values())
    detail = (f"{'bf16 autocast' if use_bf16 else 'fp32'}, batch {batch}, {tokens} tokens, measured peak "
              f"{flop_rate(peak / 1e12)}; inference speed ratio VideoMAE/4DS {ratio_inf:.2f}x\n      "
              + "\n      ".join(lines))
    return {"status": "PASS" if ok else "FAIL", "detail": detail, "rows": rows, "peak_tflops": peak / 1e12,
            "dtype": "bf16" if use_bf16 else "fp32", "batch": batch}


STEP_FUNCTIONS = {"parity": step_parity, "bf16": step_bf16, "ddp": step_ddp, "fsdp2": step_fsdp2,
                  "deepspeed": step_deepspeed, "throughput": step_throughput}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cuda: the full check; cpu: tiny smoke version of every step (default cuda)")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    parser.add_argument("--case", default=str(REPO / "tests" / "fixtures" / "4ds" / "tiny_backbone"),
                        help="4DS fixture case for the parity step")
    parser.add_argument("--batch-size", dest="batch", type=int, help="throughput batch (default 8 cuda, 2 cpu)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    import torch

    import rep4d  # noqa: F401

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but torch.cuda.is_available() is False (use --device cpu for the smoke test)")
    from bench_official import cpu_name  # the benchmarks' one CPU-name helper (same folder)

    name = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    print(f"gpu_check on {args.device} ({name}); torch {torch.__version__}; native bf16: {native_bf16(args.device)}",
          flush=True)
    results, start = {}, time.perf_counter()
    for step in args.only or STEPS:
        began = time.perf_counter()
        try:
            result = STEP_FUNCTIONS[step](args)
        except Exception as error:  # noqa: BLE001  (a failed step is reported, the next steps still run)
            result = {"status": "FAIL", "detail": f"{type(error).__name__}: {error}"}
        result["seconds"] = time.perf_counter() - began
        results[step] = result
        print(f"{result['status']:<4} {step:<10} {result['seconds']:6.1f}s  {result['detail']}", flush=True)
    failed = [step for step, result in results.items() if result["status"] == "FAIL"]
    print(f"{'FAILED: ' + ', '.join(failed) if failed else 'all steps passed or skipped'} "
          f"in {time.perf_counter() - start:.0f}s")
    if args.json:
        tmp = f"{args.json}.tmp"
        Path(tmp).write_text(json.dumps({"device": args.device, "name": name, "steps": results}, indent=2,
                                        default=str))
        os.replace(tmp, args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
