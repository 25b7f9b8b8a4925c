"""GPU latency (issue 15, item 3): what pruning, reduced precision, torch.compile, CUDA graphs and
2:4 sparsity buy for small models on a GPU, measured with CUDA events after warm-up.

Run on a CUDA machine (scripts/gpu_check.sh runs it); writes one JSON file and prints tables:

    python benchmarks/gpu_latency.py --out runs/gpu-latency.json [--seconds 0.5] [--batch-sizes 1,64,1024]

1. Modes: the flagship (shipped `fmnist-resnet`) on every PyTorch GPU runtime of
   `deepslim.profiling.gpu_latency` at each batch size (`measure_latency`, each alone).
2. Pruned vs full, interleaved (`compare_latency`): the flagship against itself pruned to about a
   quarter of its MACs (half the channels, rounded to 8), per batch size, eager fp32, bf16 autocast,
   float16 weights and CUDA graph (torch.compile only in stage 1: each model and batch size compiles anew).
3. 2:4 sparsity: deepslim's `NMSparsity(2, 4)` on an MLP of 4096-wide Linears (fp16), dense against
   `torch.sparse.to_sparse_semi_structured` weights, interleaved, where the GPU supports it. The
   flagship itself has no Linear those kernels take (its classifier is 64 -> 10).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

import deepslim
from deepslim.profiling.gpu_latency import gpu_runtimes_here
from deepslim.profiling.latency import compare_latency, describe_speedup, measure_latency

EXAMPLE = torch.randn(1, 1, 28, 28)
# torch.compile is timed in the modes stage only: each model and batch size is a compile of its own
PRUNED_RUNTIMES = ("cuda", "cuda-bf16", "cuda-half", "cuda-graph")


def _stage(name: str, fn, results: dict) -> None:
    """Run one stage; a failure is recorded (with its message) and the next stage still runs."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # a benchmark reports what broke rather than stopping
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)


def _pruned_quarter(model: nn.Module) -> nn.Module:
    pruned = copy.deepcopy(model)
    plan = deepslim.prune_(pruned, deepslim.ChannelPruning(ratio=0.5, round_to=8), example_inputs=EXAMPLE)
    print(f"pruned: {plan.macs_before / 1e6:.2f}M -> {plan.macs_after / 1e6:.2f}M MACs "
          f"({plan.macs_after / plan.macs_before:.2f})")
    return pruned.eval()


def modes(model, batch_sizes, seconds):
    rows = measure_latency(model, EXAMPLE, batch_sizes=batch_sizes, runtimes=gpu_runtimes_here(),
                           min_seconds=seconds)
    eager = {r.batch_size: r.median_ms for r in rows if r.runtime == "cuda"}
    print(f"\n{'runtime':<16} {'batch':>5} {'median ms':>10} {'IQR':>7} {'vs eager fp32':>14}")
    for r in rows:
        print(f"{r.runtime:<16} {r.batch_size:>5} {r.median_ms:>10.4f} {r.iqr_ms:>7.4f} "
              f"{eager[r.batch_size] / r.median_ms:>13.2f}x")
    return [r.to_dict() for r in rows]


def pruned_vs_full(model, batch_sizes, seconds):
    pruned = _pruned_quarter(model)
    out = []
    print(f"\n{'runtime':<16} {'batch':>5} {'full ms':>9} {'pruned ms':>10}  speed-up (interleaved)")
    for runtime in PRUNED_RUNTIMES:
        for row in compare_latency(model, pruned, EXAMPLE, batch_sizes=batch_sizes, runtimes=(runtime,),
                                   min_seconds=seconds):
            print(f"{runtime:<16} {row.batch_size:>5} {row.baseline_ms:>9.4f} {row.candidate_ms:>10.4f}  "
                  f"{describe_speedup(row)}")
            out.append(row.to_dict())
    return out


class _MLP(nn.Sequential):
    def __init__(self, width: int = 4096, depth: int = 4):
        super().__init__(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])


def semi_structured(batch_sizes, seconds):
    from torch.sparse import to_sparse_semi_structured

    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return {"skipped": f"compute capability {major}.{minor}: 2:4 sparse kernels need 8.0 or newer"}
    torch.manual_seed(0)
    dense = _MLP().half().cuda().eval()
    deepslim.prune_(dense, deepslim.NMSparsity(2, 4), skip_head=False)
    sparse = copy.deepcopy(dense)
    for layer in sparse:
        if isinstance(layer, nn.Linear):
            layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()), requires_grad=False)
    x = torch.randn(1, 4096, dtype=torch.float16, device="cuda")
    with torch.inference_mode():
        error = ((sparse(x) - dense(x)).norm() / dense(x).norm()).item()
    print(f"\n2:4 MLP (4 x Linear 4096x4096, fp16): relative output error sparse vs dense {error:.1e}")
    out = {"relative_error": error, "rows": []}
    for row in compare_latency(dense, sparse, x, batch_sizes=batch_sizes, runtimes=("cuda",), min_seconds=seconds):
        print(f"  batch {row.batch_size:>5}: dense {row.baseline_ms:.4f} ms, 2:4 {row.candidate_ms:.4f} ms, "
              f"{describe_speedup(row)}")
        out["rows"].append(row.to_dict())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu-latency.json")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing seconds per row (default 0.5)")
    parser.add_argument("--batch-sizes", default="1,64,1024")
    parser.add_argument("--stages", default="modes,pruned_vs_full,semi_structured_2_4", help="which stages to run")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here; this benchmark runs on a GPU machine (scripts/gpu_check.sh)", file=sys.stderr)
        return 2
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    results = {"date": time.strftime("%Y-%m-%d"), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
               "cuda": torch.version.cuda, "runtimes": list(gpu_runtimes_here()), "batch_sizes": list(batch_sizes),
               "seconds_per_row": args.seconds, "command": " ".join(sys.argv)}
    print({k: results[k] for k in ("gpu", "torch", "cuda", "runtimes")}, flush=True)
    model = deepslim.load_pretrained("fmnist-resnet").eval()
    stages = {"modes": lambda: modes(model, batch_sizes, args.seconds),
              "pruned_vs_full": lambda: pruned_vs_full(model, batch_sizes, args.seconds),
              "semi_structured_2_4": lambda: semi_structured(batch_sizes, args.seconds)}
    for name in args.stages.split(","):
        _stage(name, stages[name], results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
