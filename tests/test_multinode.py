"""Multi-node launch proven on one machine: two ``torchrun`` launchers (``--nnodes 2``, node ranks 0 and 1, c10d
rendezvous on 127.0.0.1) train the same steps as one process with the same global batch, and get the same losses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rep4d.training.checkpointing import read_metrics
from rep4d.training.train import parse_args, train

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_node_launch_matches_one_process(tmp_path):
    # 4DS with mask_ratio 0: no per-process randomness, so 2 nodes x 1 process with the same global batch must give
    # the same losses as one process (the tolerance of tests/test_distributed.py's one-machine 2-process test).
    common = ["--method", "4ds", "--data", "synthetic", "--synthetic-clips", "8", "--batch-size", "4",
              "--max-steps", "3", "--warmup-steps", "1", "--log-steps", "1", "--quiet", "--report-to", "none",
              "--no-final", "--config", "mask_ratio=0.0"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    endpoint = f"127.0.0.1:{free_port()}"
    launchers = []
    for node_rank in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--node-rank", str(node_rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                   "--rdzv-id", "rep4d-multinode-test", "--local-addr", "127.0.0.1", "--max-restarts", "0",
                   "-m", "rep4d.training.train", *common, "--output", str(tmp_path / "multinode")]
        launchers.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for launcher in launchers:
            outputs.append(launcher.communicate(timeout=180)[0])
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
    for launcher, output in zip(launchers, outputs):
        assert launcher.returncode == 0, output[-4000:]
    single = train(parse_args([*common, "--output", str(tmp_path / "single")]))
    rows = read_metrics(tmp_path / "multinode" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]  # written once, by the global main process
    assert [r["loss"] for r in rows] == pytest.approx(single.losses, rel=1e-5, abs=1e-6)
    single_rows = read_metrics(tmp_path / "single" / "metrics.csv")
    assert [r["lr"] for r in rows] == [r["lr"] for r in single_rows]
