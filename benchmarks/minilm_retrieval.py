"""Retrieval quality of the uncompressed minilm-l6 on the debian-descriptions test split.

The reference row every compressed embedder of issue 16 is compared against: each test query
(a package's short description) ranks all test long descriptions by cosine similarity.

    .venv/bin/python benchmarks/minilm_retrieval.py --json benchmarks/results/minilm_retrieval.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import deepslim
from deepslim.profiling.environment import environment
from deepslim.train.retrieval import retrieval_metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="pre-extracted debian-descriptions (default: APT's lists)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass, default 64")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    data = deepslim.load_dataset("debian-descriptions", **({"data_dir": args.data_dir} if args.data_dir else {}))
    model = deepslim.load_pretrained("minilm-l6")
    test = data.test
    started = time.perf_counter()
    with torch.inference_mode():
        queries = model.encode(test.queries, batch_size=args.batch_size)
        documents = model.encode(test.documents, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    metrics = retrieval_metrics(queries, documents)
    print("| model | test pairs | recall@1 % | recall@10 % | MRR | encode s (both sides) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| minilm-l6 (fp32, PyTorch) | {metrics['n']:,} | {metrics['recall@1']:.2f} | {metrics['recall@10']:.2f} "
          f"| {metrics['mrr']:.4f} | {seconds:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"metrics": metrics, "encode_seconds": round(seconds, 1),
                                         "environment": environment()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
