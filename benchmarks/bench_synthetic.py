"""Throughput of the synthetic generator and of the decode + augment pipeline (clips per second, this CPU).

    .venv/bin/python benchmarks/bench_synthetic.py --num-clips 200 --frames 16 --size 64 --workers 2

Reports: in-memory ``generate_clip`` clips/s (one process), ``write_dataset`` clips/s (mp4 + npz + metadata,
``--workers`` processes), and the ``VideoClipDataset`` decode + random crop + flip + colour jitter clips/s through a
DataLoader (``--workers`` loader workers) on the written mp4 files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-clips", type=int, default=200)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch

    from rep4d.training.synthetic import generate_clip, write_dataset
    from rep4d.training.video_data import ClipConfig, build_video_dataset, collate_video_clips

    results = {"frames": args.frames, "size": args.size, "workers": args.workers}
    count = max(args.num_clips // 4, 10)
    start = time.perf_counter()
    for seed in range(count):
        generate_clip(seed, num_frames=args.frames, height=args.size, width=args.size)
    results["generate_clip_per_s_1proc"] = count / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_dataset(folder, num_clips=args.num_clips, num_frames=args.frames, height=args.size, width=args.size,
                      workers=args.workers, progress=False)
        results["write_dataset_per_s"] = args.num_clips / (time.perf_counter() - start)

        dataset = build_video_dataset(f"{folder}/metadata.csv",
                                      ClipConfig(num_frames=min(8, args.frames), frame_stride=2 if args.frames >= 15 else 1,
                                                 height=args.size, width=args.size), seed=0)
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                                             collate_fn=collate_video_clips)
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += batch["pixel_values"].shape[0]
        results["decode_augment_per_s"] = seen / (time.perf_counter() - start)
        results["decode_clip"] = list(batch["pixel_values"].shape[1:])
    print(json.dumps({key: round(value, 1) if isinstance(value, float) else value for key, value in results.items()},
                     indent=1))


if __name__ == "__main__":
    main()
