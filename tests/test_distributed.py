"""Distributed training on CPU: 2-process DDP equals 1 process, FSDP2 sharding, launch configurations."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rep4d.training.checkpointing import read_metrics
from rep4d.training.train import parse_args, train

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
REPO = CONFIGS.parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    # 4DS with mask_ratio 0: the objective has no per-process randomness, so the same global batch must give the
    # same losses (the masks of a 95% run are drawn per process and would differ by design).
    common = ["--method", "4ds", "--data", "synthetic", "--synthetic-clips", "8", "--batch-size", "4",
              "--gradient-accumulation-steps", "2", "--max-steps", "4", "--warmup-steps", "2", "--log-steps", "1",
              "--quiet", "--report-to", "none", "--config", "mask_ratio=0.0"]
    torchrun(["-m", "rep4d.training.train", *common, "--output", str(tmp_path / "ddp")])
    single = train(parse_args([*common, "--output", str(tmp_path / "single")]))
    rows = read_metrics(tmp_path / "ddp" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # written once (main process), one row per optimizer step
    ddp_losses = [r["loss"] for r in rows]
    assert ddp_losses == pytest.approx(single.losses, rel=1e-5, abs=1e-6)
    # The schedule is counted in optimizer steps, not num_processes times faster.
    single_rows = read_metrics(tmp_path / "single" / "metrics.csv")
    assert [r["lr"] for r in rows] == [r["lr"] for r in single_rows]
    assert rows[-1]["lr"] == 0.0 and rows[1]["lr"] == pytest.approx(1e-3)


FSDP2_SCRIPT = r"""
import json, sys, torch, torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor
from rep4d.modeling.modeling_fourds import FourDSForPreTraining
from rep4d.training.launch import apply_fsdp2
from rep4d.training.objectives import fourds_config

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = FourDSForPreTraining(fourds_config("tiny", {"mask_ratio": 0.0}))
reference = FourDSForPreTraining(model.config)
reference.load_state_dict(model.state_dict())
video = torch.rand(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
apply_fsdp2(model)
weight = model.fourds.encoder.layers[0].mlp.dense_in.weight  # (256, 64): 128 rows per rank
local_rows = weight.to_local().shape[0] if isinstance(weight, DTensor) else -1
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss = model(video).loss
loss.backward()
optimizer.step()
ref_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
ref_loss = reference(video).loss
ref_loss.backward()
ref_optimizer.step()
full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
expected = reference.state_dict()
max_error = max((full[k] - expected[k]).abs().max().item() for k in expected) if rank == 0 else 0.0
result = dict(rank=rank, is_dtensor=isinstance(weight, DTensor), local_rows=local_rows,
              full_rows=weight.shape[0], loss=loss.item(), ref_loss=ref_loss.item(), keys=len(full),
              expected_keys=len(expected), same_keys=sorted(full) == sorted(expected) if rank == 0 else True,
              max_error=max_error)
open(f"{sys.argv[1]}/result_{rank}.json", "w").write(json.dumps(result))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_fsdp2_shards_blocks_and_gathers_full_state_dict(tmp_path):
    script = tmp_path / "fsdp2_check.py"
    script.write_text(FSDP2_SCRIPT)
    torchrun([str(script), str(tmp_path)])
    results = [json.loads((tmp_path / f"result_{rank}.json").read_text()) for rank in range(2)]
    assert len(results) == 2
    for result in results:
        assert result["is_dtensor"]
        assert result["local_rows"] * 2 == result["full_rows"]  # dim 0 split over the 2 ranks
        assert result["loss"] == pytest.approx(result["ref_loss"], rel=1e-5)
    assert results[0]["same_keys"] and results[0]["keys"] == results[0]["expected_keys"]
    assert results[0]["max_error"] < 1e-5  # gathered weights after one step equal the unsharded model's


def test_apply_fsdp2_refuses_models_without_blocks():
    import torch

    from rep4d.training.launch import apply_fsdp2

    with pytest.raises(ValueError, match="_no_split_modules"):
        apply_fsdp2(torch.nn.Linear(2, 2))


def test_launch_configs_parse_and_are_documented():
    readme = (CONFIGS / "README.md").read_text()
    files = sorted(CONFIGS.glob("*.json")) + sorted(CONFIGS.glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        assert path.name in readme, f"{path.name} is not documented in training/configs/README.md"
        if path.suffix == ".json":
            config = json.loads(path.read_text())
            assert config["zero_optimization"]["stage"] in (2, 3)
            assert config["gradient_accumulation_steps"] == "auto"
        else:
            config = yaml.safe_load(path.read_text())
            assert config["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
            assert config["num_processes"] >= 8
            if config["distributed_type"] == "DEEPSPEED":
                ds_file = REPO / config["deepspeed_config"]["deepspeed_config_file"]
                stage = json.loads(ds_file.read_text())["zero_optimization"]["stage"]
                assert config["deepspeed_config"]["zero3_init_flag"] == (stage == 3)
            if config["distributed_type"] == "FSDP":
                assert config["fsdp_config"]["fsdp_version"] == 2
                assert config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "FourDSLayer"
            if config["num_machines"] > 1:
                assert "main_process_ip" in config and "--machine_rank" in readme
    assert "ACCELERATE_USE_CPU=1" in readme and "torchrun" in readme
