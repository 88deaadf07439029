"""CPU flash attention (SDPA) on q/k/v that are strided views of a fused qkv projection vs contiguous copies.

    python benchmarks/bench_attention_layout.py --batch 1 8 --dtypes fp32 bf16

ViT-B shapes (1568 tokens, 12 heads of 64). Times include the copy in the contiguous variant; best of N, alternated.
This decides ``modeling.layers.SelfAttention``'s layout: contiguous for fp32 on CPU, strided views otherwise.
Measured (2-core AMX CPU): fp32 batch 1: strided 64.8 ms, contiguous 58.9 ms; bf16 batch 1: 18.3 vs 19.8 ms;
bf16 batch 8: 190 vs 215 ms.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--tokens", type=int, default=1568)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for batch in args.batch:
        for name in args.dtypes:
            dtype = torch.float32 if name == "fp32" else torch.bfloat16
            qkv = torch.randn(batch, args.tokens, 3, args.heads, args.head_dim, dtype=dtype).permute(2, 0, 3, 1, 4)
            variants = {
                "strided": lambda qkv=qkv: sdpa(*qkv.unbind(0)),
                "contiguous": lambda qkv=qkv: sdpa(*qkv.contiguous().unbind(0)),
            }
            best = dict.fromkeys(variants, float("inf"))
            with torch.inference_mode():
                for _ in range(args.repeats):
                    for key, call in variants.items():
                        start = time.perf_counter()
                        call()
                        best[key] = min(best[key], time.perf_counter() - start)
            print(f"batch {batch} {name}: strided {best['strided'] * 1e3:.1f} ms, contiguous "
                  f"{best['contiguous'] * 1e3:.1f} ms (contiguous/strided {best['contiguous'] / best['strided']:.2f})")


if __name__ == "__main__":
    main()
