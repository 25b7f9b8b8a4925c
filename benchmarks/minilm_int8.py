"""minilm-l6 on ONNX Runtime: fp32 export against dynamic int8, on the debian-descriptions test split.

Both rows are measured in the same run: retrieval quality (recall@1, recall@10, MRR over the whole
test split), cosine fidelity to the PyTorch fp32 embeddings, file size, and ORT latency timed
interleaved against the fp32 file at batch 1 (the median-length real query at its own length) and
batch 64 (real long descriptions padded to their longest, at most 128 tokens as in issue 16).

    .venv/bin/python benchmarks/minilm_int8.py --json benchmarks/results/minilm_int8.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import deepslim
from deepslim.profiling.environment import environment
from deepslim.profiling.latency import compare_latency, default_threads, describe_speedup
from deepslim.quantize.int8 import export_int8_dynamic
from deepslim.text import tokenize
from deepslim.text.evaluate import encode_texts
from deepslim.train.retrieval import retrieval_metrics

BATCH = 64
DOC_MAX_TOKENS = 128  # issue 16: the large-batch latency input is long descriptions cut at 128 tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="pre-extracted debian-descriptions (default: APT's lists)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--limit", type=int, help="first N test pairs only (a quick smoke run)")
    args = parser.parse_args()
    data = deepslim.load_dataset("debian-descriptions", **({"data_dir": args.data_dir} if args.data_dir else {}))
    model = deepslim.load_pretrained("minilm-l6").eval()
    test, threads = data.test, default_threads()
    queries, documents = list(test.queries)[:args.limit], list(test.documents)[:args.limit]
    texts, n_queries = queries + documents, len(queries)

    with torch.inference_mode():
        reference = model.encode(texts, batch_size=BATCH)

    # Latency inputs. compare_latency builds batch n by repeating the FIRST sample n times (core.inputs
    # .repeat_batch), so the batch-64 input puts the longest document first: the timed batch then has the
    # same shape as the 64 real documents padded to their longest (ORT's cost depends on the shape only).
    query_lengths = [int(m.sum()) for m in (tokenize(model, [q])["attention_mask"] for q in queries)]
    median_query = sorted(range(n_queries), key=query_lengths.__getitem__)[n_queries // 2]
    one_query = tokenize(model, [queries[median_query]])
    docs = documents[:BATCH]
    doc_batch = tokenize(model, docs, max_length=DOC_MAX_TOKENS)
    longest = int(doc_batch["attention_mask"].sum(1).argmax())
    docs.insert(0, docs.pop(longest))
    doc_batch = tokenize(model, docs, max_length=DOC_MAX_TOKENS)
    seq = {"batch1_query_tokens": one_query["input_ids"].shape[1],
           "batch64_padded_tokens": doc_batch["input_ids"].shape[1],
           "batch64_real_tokens_mean": round(float(doc_batch["attention_mask"].sum(1).float().mean()), 1),
           "doc_max_tokens": DOC_MAX_TOKENS, "encode_max_tokens": model.max_length}

    rows = []
    with tempfile.TemporaryDirectory(prefix="minilm-int8-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        deepslim.export_onnx(model, fp32, one_query, dynamic_sequence=True)
        export_int8_dynamic(model, one_query, int8, dynamic_sequence=True)
        latency = {}
        for name, example, bs in (("batch1", one_query, 1), ("batch64", doc_batch, BATCH)):
            (row,) = compare_latency(fp32, int8, example, batch_sizes=(bs,), runtimes=("onnxruntime",),
                                     threads=threads)
            latency[name] = row.to_dict()
        for label, path in (("ORT fp32", fp32), ("ORT dynamic int8", int8)):
            started = time.perf_counter()
            emb = encode_texts(model, texts, onnx=path, threads=threads)
            seconds = time.perf_counter() - started
            cos = torch.nn.functional.cosine_similarity(emb, reference, dim=1)
            metrics = retrieval_metrics(emb[:n_queries], emb[n_queries:])
            rows.append({"model": label, "metrics": metrics, "cosine_mean": float(cos.mean()),
                         "cosine_min": float(cos.min()), "file_mb": path.stat().st_size / 1e6,
                         "encode_seconds": round(seconds, 1)})
    rows[1]["latency"] = latency

    print(f"minilm-l6, debian-descriptions test ({rows[0]['metrics']['n']:,} pairs), ORT, {threads} threads; "
          f"batch 1 = median query ({seq['batch1_query_tokens']} tokens), batch 64 = {seq['batch64_padded_tokens']} "
          f"tokens padded")
    print("| model | recall@1 % | recall@10 % | MRR | cos mean | cos min | file MB | batch 1 vs fp32 | batch 64 vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        m = r["metrics"]
        speed = [describe_speedup(r["latency"][k]) + f" ({r['latency'][k]['candidate_ms']:.1f} vs "
                 f"{r['latency'][k]['baseline_ms']:.1f} ms)" for k in ("batch1", "batch64")] \
            if "latency" in r else ["1x (baseline)"] * 2
        print(f"| {r['model']} | {m['recall@1']:.2f} | {m['recall@10']:.2f} | {m['mrr']:.4f} | {r['cosine_mean']:.5f} "
              f"| {r['cosine_min']:.5f} | {r['file_mb']:.1f} | {speed[0]} | {speed[1]} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "sequence_lengths": seq, "threads": threads,
                                         "environment": environment()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
