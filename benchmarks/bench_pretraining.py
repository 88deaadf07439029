"""4DS SimpleMAE training throughput (tokens/s) with and without gradient checkpointing, and the activation memory
that checkpointing saves.

    python benchmarks/bench_pretraining.py                      # B preset, 16x224x224, batch 2, 95% masking
    python benchmarks/bench_pretraining.py --preset s --batch 4 --steps 3

Only the kept 5% of the tubelets go through the first L-4 blocks; the decoding tokens join for the last 4 (paper
section 5). Activation memory is measured exactly: the bytes of every tensor autograd saves for the backward pass
(torch.autograd.graph.saved_tensors_hooks), counted once per storage. Tokens/s counts input tubelets (B * N) per
optimizer step (forward, backward and AdamW step).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.modeling import FourDSForPreTraining


def saved_activation_bytes(model, pixels, generator_seed: int) -> int:
    storages = {}

    def pack(tensor):
        try:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(pixels, generator=torch.Generator().manual_seed(generator_seed)).loss
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(size for pointer, size in storages.items() if pointer not in parameter_storages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="b")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mask-ratio", type=float, default=0.95)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = FourDSConfig.from_preset(args.preset, mask_ratio=args.mask_ratio)
    pixels = torch.rand(args.batch, config.num_frames, 3, *config.image_size)
    results = {"preset": args.preset, "batch": args.batch, "tokens_per_clip": config.num_tokens,
               "kept_tokens_per_clip": config.num_tokens - round(config.num_tokens * args.mask_ratio)}
    for checkpointing in (False, True):
        model = FourDSForPreTraining(config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
        activations = saved_activation_bytes(model, pixels, 0)
        times = []
        for step in range(args.steps + 1):
            start = time.perf_counter()
            loss = model(pixels, generator=torch.Generator().manual_seed(step)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - start)
        best = min(times)
        key = "checkpointing" if checkpointing else "plain"
        results[key] = {
            "step_seconds": best,
            "tokens_per_second": args.batch * config.num_tokens / best,
            "clips_per_second": args.batch / best,
            "saved_activation_bytes": activations,
            "final_loss": float(loss),
        }
        print(f"{key:<14} {best:7.2f} s/step  {args.batch * config.num_tokens / best:9.0f} tokens/s  "
              f"activations saved for backward {activations / 2**20:8.1f} MiB")
    saved = results["plain"]["saved_activation_bytes"] - results["checkpointing"]["saved_activation_bytes"]
    results["activation_bytes_saved_by_checkpointing"] = saved
    results["checkpointing_slowdown"] = results["checkpointing"]["step_seconds"] / results["plain"]["step_seconds"]
    print(f"checkpointing saves {saved / 2**20:.1f} MiB of activations "
          f"({100 * saved / results['plain']['saved_activation_bytes']:.0f}%) for a "
          f"{results['checkpointing_slowdown']:.2f}x step time")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
