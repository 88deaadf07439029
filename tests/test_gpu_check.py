"""Smoke tests of the performance harnesses: ``scripts/gpu_check.sh --device cpu`` (every step of the GPU check at
tiny sizes) and ``benchmarks/bench_official.py --rep4d-only`` (the side-by-side script without the official side)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_gpu_check_cpu_smoke_runs_every_step(tmp_path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--json", str(out)],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert list(steps) == ["parity", "bf16", "ddp", "fsdp2", "deepspeed", "throughput"]
    assert steps["parity"]["status"] == "PASS"
    for errors in steps["parity"]["errors"].values():
        assert errors["vs_cpu"] == 0.0 and errors["vs_reference"] < 1e-4
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert steps["bf16"]["status"] == ("PASS" if native else "SKIP")
    assert steps["ddp"]["status"] == "PASS"
    assert sorted(steps["ddp"]["results"]) == ["4ds", "distill", "moog", "rvm"]
    assert all(r["backend"] == "gloo" and r["world_size"] == 1 for r in steps["ddp"]["results"].values())
    assert steps["fsdp2"]["status"] == "PASS"
    assert steps["deepspeed"]["status"] == "SKIP" and "not checked" in steps["deepspeed"]["detail"]
    throughput = steps["throughput"]
    assert throughput["status"] == "PASS"
    assert set(throughput["rows"]) == {"4ds_inference", "videomae_inference", "4ds_simplemae_train",
                                       "videomae_pretrain_train"}
    for row in throughput["rows"].values():
        assert row["clips_per_s"] > 0 and 0 < row["mfu"] < 5  # FLOPs counted, peak measured: a finite utilisation
    assert "SKIP deepspeed" in result.stdout and "all steps passed or skipped" in result.stdout


def test_gpu_check_refuses_cuda_without_a_gpu():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so the check runs (and must refuse) on every machine.
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cuda",
                             "--only", "parity"], cwd=REPO, env={**ENV, "CUDA_VISIBLE_DEVICES": ""},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: --device cuda but torch.cuda.is_available() is False" in result.stderr


@pytest.mark.slow
def test_bench_official_rep4d_only_tiny(tmp_path):
    out = tmp_path / "official.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_official.py"), "--rep4d-only", "--tiny",
               "--rounds", "1", "--repeats", "1", "--workloads", "4ds-b-fp32", "rvm-s-stream", "--json", str(out)]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["native_bf16"] == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert report["cpu"] and "torch.ops.mkldnn._is_mkldnn_bf16_supported()" in result.stdout
    rows = report["workloads"]
    assert set(rows) == {"4ds-b-fp32", "rvm-s-stream"}
    assert rows["4ds-b-fp32"]["seconds"]["rep4d"] > 0 and rows["4ds-b-fp32"]["seconds"]["videomae"] > 0
    assert rows["4ds-b-fp32"]["ratio_official"] is None and rows["4ds-b-fp32"]["ratio_videomae"] > 0
    assert "videomae" not in rows["rvm-s-stream"]["seconds"]
    assert "| 4ds-b-fp32 | n/a |" in result.stdout


def test_bench_official_caps_the_instruction_set_as_an_avx2_cpu(tmp_path):
    """``--max-isa avx2`` runs every side as an AVX2-only CPU would: ATen reports AVX2 and oneDNN no native bf16, so
    rep4d's bf16 row follows the precision policy (float32 matmuls) and the report says so."""
    out = tmp_path / "avx2.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_official.py"), "--rep4d-only", "--tiny", "--max-isa",
               "avx2", "--rounds", "1", "--repeats", "1", "--workloads", "4ds-b-bf16", "train-4ds", "train-4ds-bf16",
               "moog-stream-128-bf16", "--json", str(out)]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["max_isa"] == "avx2" and report["cpu_capability"] == "AVX2" and report["native_bf16"] is False
    assert "instruction set capped to AVX2" in result.stdout
    rows = report["workloads"]
    assert rows["4ds-b-bf16"]["sides"]["rep4d"]["arch"]["output_dtype"] == "bfloat16"
    assert rows["train-4ds"]["seconds"]["rep4d"] > 0 and rows["train-4ds"]["seconds"]["videomae"] > 0
    # Every workload also runs in bf16 ("-bf16"); training in bf16 on this capped CPU trains in fp32 (the policy of
    # `rep4d train --mixed-precision bf16`), inference keeps bf16 outputs with float32 matmuls.
    assert rows["train-4ds-bf16"]["sides"]["rep4d"]["arch"]["bf16"] is False
    assert rows["train-4ds"]["sides"]["rep4d"]["arch"]["bf16"] is False
    assert rows["moog-stream-128-bf16"]["seconds"]["rep4d"] > 0


def test_bench_official_needs_the_official_side_or_rep4d_only():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_official.py")], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--official-python" in result.stderr and "--rep4d-only" in result.stderr
