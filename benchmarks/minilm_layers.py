"""Layer dropping on minilm-l6, before any fine-tune: which layers to keep, chosen by measured loss
(greedy) or by position (the last ones dropped), against the full model, on the whole
debian-descriptions test split.

Greedy scores each candidate removal by the cosine distance between the pruned and the full
model's embeddings of 64 validation short descriptions and 64 validation long descriptions (at
most 128 tokens): no labels, no test data.

    .venv/bin/python benchmarks/minilm_layers.py --json benchmarks/results/minilm_layers.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import deepslim
from deepslim.profiling.environment import environment
from deepslim.prune import LayerDropping, prune_
from deepslim.text.embedder import tokenize
from deepslim.train.retrieval import retrieval_metrics

STACK = "bert.encoder.layer"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="4,3", help="layer counts to keep, default 4,3")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = deepslim.load_dataset("debian-descriptions")
    base = deepslim.load_pretrained("minilm-l6").eval()
    test, val = data.test, data.val

    def judge(model) -> dict:
        started = time.perf_counter()
        with torch.inference_mode():
            metrics = retrieval_metrics(model.encode(test.queries, batch_size=args.batch_size),
                                        model.encode(test.documents, batch_size=args.batch_size))
        return {**metrics, "encode_seconds": time.perf_counter() - started}

    texts = list(val.queries[:64]) + list(val.documents[:64])
    batches = [tokenize(base, texts[i:i + 32], max_length=128) for i in range(0, len(texts), 32)]
    task = deepslim.EmbeddingMatch("cosine", teacher=copy.deepcopy(base))
    rows = [{"name": "full (6 layers)", "kept": list(range(6)), **judge(base)}]
    for keep in (int(k) for k in args.keep.split(",")):
        for selection in ("greedy_loss", "last"):
            model = copy.deepcopy(base)
            started = time.perf_counter()
            plan = prune_(model, LayerDropping(keep_layers=keep, selection=selection), example_inputs=batches[0],
                          data=batches, task=task)
            chosen = time.perf_counter() - started
            rows.append({"name": f"keep {keep}, {selection}", "kept": plan.layers[STACK]["kept"],
                         "select_seconds": chosen, **judge(model)})
            print(rows[-1]["name"], rows[-1]["kept"], f"{rows[-1]['recall@1']:.2f}", flush=True)
    print("| model | layers kept | recall@1 % | recall@10 % | MRR | selection s | encode s (both sides) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {','.join(map(str, r['kept']))} | {r['recall@1']:.2f} | {r['recall@10']:.2f} | "
              f"{r['mrr']:.4f} | {r.get('select_seconds', 0):.0f} | {r['encode_seconds']:.0f} |")
    env = environment()
    print(f"\n{rows[0]['n']:,} test pairs; no fine-tune; PyTorch fp32; {env}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "environment": env}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
