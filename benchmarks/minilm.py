"""minilm-l6 compressed for CPU semantic search against what its users run today (issue 16), in one run.

Rows, each an ONNX file on ONNX Runtime, measured on the whole debian-descriptions test split (recall@1,
recall@10, MRR) and timed interleaved against the unmodified model's plain fp32 export with 2 threads,
at batch 1 (the median-length real query at its own length) and batch 32 (32 real long descriptions
padded to their longest, at most 128 tokens):

- ORT fp32, plain export (the baseline);
- ORT fp32 + ``onnxruntime.transformers.optimizer`` fusion (bert, 12 heads, hidden 384);
- ORT ``quantize_dynamic`` (int8 MatMul weights, per channel; what sentence-transformers and Optimum
  export by default);
- deepslim: a student from ``benchmarks/minilm_recovery.py`` (layer dropping, optional FFN pruning,
  distillation on unlabelled training text), dynamic int8 with int8 embedding tables.

    .venv/bin/python benchmarks/minilm.py --student runs/minilm-recovery/keep3-e1 --json benchmarks/results/minilm.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import deepslim
from deepslim.export.files import write_json_atomic
from deepslim.profiling.environment import environment
from deepslim.profiling.latency import compare_latency, default_threads, describe_speedup
from deepslim.quantize.int8 import export_int8_dynamic
from deepslim.text.evaluate import evaluate_retrieval

sys.path.insert(0, str(Path(__file__).parent))
from minilm_recovery import BATCH, latency_inputs  # noqa: E402  (the same latency inputs as the recovery study)


def fused(fp32: Path, out: Path) -> Path:
    from onnxruntime.transformers import optimizer

    optimizer.optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(str(out))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, required=True, help="a student folder of benchmarks/minilm_recovery.py")
    parser.add_argument("--limit", type=int, help="smoke runs: the first N test pairs only")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    data = deepslim.load_dataset("debian-descriptions")
    if args.limit:
        data.test = data.test.take(range(args.limit))
    base = deepslim.load_pretrained("minilm-l6").eval()
    student = deepslim.load(args.student).eval()
    threads = default_threads()
    one_query, doc_batch, lengths = latency_inputs(base, list(data.test.queries), list(data.test.documents))
    rows = []
    with tempfile.TemporaryDirectory(prefix="minilm-peers-") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        deepslim.export_onnx(base, fp32, one_query, dynamic_sequence=True)
        files = [("ORT fp32 (plain export)", base, fp32),
                 ("ORT fp32 + transformers optimizer fusion", base, fused(fp32, tmp / "fused.onnx")),
                 ("ORT quantize_dynamic (int8 MatMul, per channel)", base, tmp / "dynamic.onnx"),
                 (f"deepslim: {args.student.name}, distilled, int8 MatMul + embeddings", student, tmp / "ours.onnx")]
        export_int8_dynamic(base, one_query, tmp / "dynamic.onnx", dynamic_sequence=True)
        export_int8_dynamic(student, one_query, tmp / "ours.onnx", dynamic_sequence=True, quantize_embeddings=True)
        for label, model, path in files:
            row = {"model": label, "file_bytes": path.stat().st_size,
                   "metrics": evaluate_retrieval(model, data.test, onnx=path, threads=threads)}
            if path != fp32:
                row["latency"] = {}
                for name, example, bs in (("batch1", one_query, 1), (f"batch{BATCH}", doc_batch, BATCH)):
                    (r,) = compare_latency(fp32, path, example, batch_sizes=(bs,), runtimes=("onnxruntime",),
                                           threads=threads)
                    row["latency"][name] = r.to_dict()
            rows.append(row)
            print(label, f"{row['metrics']['recall@1']:.2f}", flush=True)
    base_r1, base_size = rows[0]["metrics"]["recall@1"], rows[0]["file_bytes"]
    print(f"\nminilm-l6 on debian-descriptions ({rows[0]['metrics']['n']:,} test pairs), ORT, {threads} threads; "
          f"batch 1 = median query ({lengths['batch1_query_tokens']} tokens), batch {BATCH} = "
          f"{lengths[f'batch{BATCH}_padded_tokens']} tokens padded")
    print(f"| model | recall@1 % | vs fp32 | recall@10 % | MRR | file MB | smaller | batch 1 | batch {BATCH} |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        m = r["metrics"]
        speed = [describe_speedup(r["latency"][k]) + f" ({r['latency'][k]['candidate_ms']:.2f} vs "
                 f"{r['latency'][k]['baseline_ms']:.2f} ms)" for k in ("batch1", f"batch{BATCH}")] \
            if "latency" in r else ["1x (baseline)"] * 2
        print(f"| {r['model']} | {m['recall@1']:.2f} | {m['recall@1'] - base_r1:+.2f} | {m['recall@10']:.2f} | "
              f"{m['mrr']:.4f} | {r['file_bytes'] / 1e6:.1f} | {base_size / r['file_bytes']:.2f}x | {speed[0]} | "
              f"{speed[1]} |")
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "sequence_lengths": lengths, "threads": threads,
                                      "student": str(args.student), "environment": environment(),
                                      "command": " ".join(["python benchmarks/minilm.py", *sys.argv[1:]])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
