"""Smaller minilm-l6 students recovered by distillation on unlabelled training text (issue 16), then
dynamic int8 on ONNX Runtime: how much of recall@1 comes back, and how fast the result is.

One variant per --variants entry ``keepK[-ffnR]``: greedy layer dropping down to K layers (measured
cosine distance to the full model on 128 validation texts, as benchmarks/minilm_layers.py), then
optionally FFN pruning of ratio R (L2 importance, every layer alike), then distillation: the student's
embedding against the full model's (1 - cosine) on the training split's short and long descriptions
(no labels; the full model's embeddings of them are computed once), AdamW. Each variant is measured on the whole test split in PyTorch fp32 and as dynamic
int8 on ORT (MatMuls only, then embedding tables too: the deployed file), whose latency is timed interleaved against the unmodified model's fp32 ORT file at batch 1
(the median-length real query at its own length) and batch 32 (32 real long descriptions padded to
their longest, at most 128 tokens). Two stages, so the timing can wait for an idle machine; every
variant writes its own JSON (a killed run keeps them):

    .venv/bin/python benchmarks/minilm_recovery.py train --variants keep4,keep3 --epochs 1
    .venv/bin/python benchmarks/minilm_recovery.py latency      # every trained variant, on an idle machine
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import deepslim
from deepslim.export.files import write_json_atomic
from deepslim.profiling.environment import environment
from deepslim.profiling.latency import compare_latency, default_threads
from deepslim.prune import FFNPruning, LayerDropping, prune_
from deepslim.quantize.int8 import export_int8_dynamic
from deepslim.text import TextBatches, tokenize
from deepslim.text.evaluate import encode_texts
from deepslim.train import TrainConfig, train
from deepslim.train.retrieval import retrieval_metrics

DOC_MAX_TOKENS = 128
BATCH = 32


def parse_variant(text: str) -> dict:
    """'keep3-ffn50' -> {'keep': 3, 'ffn': 0.5}."""
    out = {"name": text, "keep": 6, "ffn": 0.0}
    for part in text.split("-"):
        if part.startswith("keep"):
            out["keep"] = int(part[4:])
        elif part.startswith("ffn"):
            out["ffn"] = int(part[3:]) / 100
        else:
            raise SystemExit(f"unknown variant part {part!r} in {text!r}: use keepK[-ffnR], e.g. keep4-ffn50")
    return out


def latency_inputs(model, queries: list[str], documents: list[str]) -> tuple[dict, dict, dict]:
    """(batch-1 query, batch-32 documents, their token counts). compare_latency repeats the first sample to
    build a batch, so the longest of the 32 documents goes first: the same shape as the 32 padded together."""
    lengths = [int(tokenize(model, [q])["attention_mask"].sum()) for q in queries]
    median = sorted(range(len(queries)), key=lengths.__getitem__)[len(queries) // 2]
    one_query = tokenize(model, [queries[median]])
    docs = documents[:BATCH]
    full = tokenize(model, docs, max_length=DOC_MAX_TOKENS)
    docs.insert(0, docs.pop(int(full["attention_mask"].sum(1).argmax())))
    doc_batch = tokenize(model, docs[:1], max_length=DOC_MAX_TOKENS)
    return one_query, doc_batch, {"batch1_query_tokens": one_query["input_ids"].shape[1],
                                  "batch32_padded_tokens": doc_batch["input_ids"].shape[1]}


def build_student(base, variant: dict, val) -> tuple[torch.nn.Module, dict]:
    student = copy.deepcopy(base)
    student.requires_grad_(True)  # the teacher's are frozen
    texts = list(val.queries[:64]) + list(val.documents[:64])
    batches = [tokenize(base, texts[i:i + 32], max_length=DOC_MAX_TOKENS) for i in range(0, len(texts), 32)]
    task = deepslim.EmbeddingMatch("cosine", teacher=base)
    plan = {}
    if variant["keep"] < base.num_layers:
        kept = prune_(student, LayerDropping(keep_layers=variant["keep"]), example_inputs=batches[0], data=batches,
                      task=task)
        plan["layers_kept"] = kept.layers["bert.encoder.layer"]["kept"]
    if variant["ffn"] > 0:
        prune_(student, FFNPruning(ratio=variant["ffn"]), example_inputs=batches[0])
        plan["ffn_ratio"] = variant["ffn"]
    return student, plan


def teacher_targets(args, base, data) -> tuple[list[str], torch.Tensor]:
    """The distillation texts (the first N/2 short and N/2 long training descriptions) and the full model's
    embeddings of them, computed once and kept in --work for every variant."""
    queries, documents = list(data.train.queries), list(data.train.documents)
    half = (args.train_texts or 2 * len(queries)) // 2
    texts = queries[:half] + documents[:half]
    cache = args.work / f"teacher-{len(texts)}.pt"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if saved["texts"] == len(texts):
            return texts, saved["embeddings"]
    started = time.perf_counter()
    embeddings = encode_texts(base, texts, batch_size=64, max_length=DOC_MAX_TOKENS, desc="teacher")
    print(f"teacher embeddings of {len(texts):,} texts: {time.perf_counter() - started:.0f} s", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    torch.save({"texts": len(texts), "embeddings": embeddings}, cache)
    return texts, embeddings


def student_dir(work: Path, name: str, epochs: int) -> Path:
    """Where a variant's student is kept: one folder per variant and epoch count, as its JSON."""
    return work / f"{name}-e{epochs}"


def judge_torch(model, test) -> dict:
    with torch.inference_mode():
        return retrieval_metrics(model.eval().encode(list(test.queries), batch_size=64),
                                 model.encode(list(test.documents), batch_size=64))


def run_variant(args, base, data, variant: dict) -> dict:
    started = time.perf_counter()
    student, plan = build_student(base, variant, data.val)
    params = sum(p.numel() for p in student.parameters())
    before = judge_torch(student, data.test)
    print(f"{variant['name']}: {plan}, {params / 1e6:.1f}M params, recall@1 before distillation "
          f"{before['recall@1']:.2f}", flush=True)
    texts, targets = teacher_targets(args, base, data)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=args.lr,
                         weight_decay=0.01, warmup_epochs=0.05, augment=False, grad_clip=1.0, seed=0)
    distill_started = time.perf_counter()
    batches = TextBatches(student, texts, args.batch_size, DOC_MAX_TOKENS, seed=0, targets=targets)
    history = train(student, batches, config, task=deepslim.EmbeddingMatch("cosine"))
    distill_seconds = time.perf_counter() - distill_started
    student.eval()
    folder = student_dir(args.work, variant["name"], args.epochs)
    deepslim.save(student, folder, overwrite=True)
    after = judge_torch(student, data.test)
    # int8 MatMuls with float embeddings (ORT's quantize_dynamic as usually called), then with the embedding
    # tables int8 too (the deployed file, timed by the latency stage)
    int8 = {}
    for name, file, embeddings in (("matmul", "model.int8-matmul.onnx", False), ("all", "model.int8.onnx", True)):
        path = folder / file
        export_int8_dynamic(student, tokenize(student, [data.test.queries[0]]), path, dynamic_sequence=True,
                            quantize_embeddings=embeddings)
        emb = encode_texts(student, list(data.test.queries) + list(data.test.documents), onnx=path,
                           threads=default_threads())
        int8[name] = {**retrieval_metrics(emb[:len(data.test)], emb[len(data.test):]), "file_bytes": path.stat().st_size}
    return {"variant": variant, "plan": plan, "params": params, "before_distillation": before,
            "after_distillation_torch_fp32": after, "ort_dynamic_int8_matmul": int8["matmul"],
            "ort_dynamic_int8": int8["all"], "int8_file_bytes": int8["all"]["file_bytes"],
            "history": history, "distill_seconds": round(distill_seconds, 1), "train_texts": len(texts),
            "seconds": round(time.perf_counter() - started, 1)}


def run_latency(args, base, data) -> None:
    """Each trained variant's int8 file timed interleaved against the full model's fp32 file (idle machine)."""
    one_query, doc_batch, lengths = latency_inputs(base, list(data.test.queries), list(data.test.documents))
    with tempfile.TemporaryDirectory(prefix="minilm-fp32-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        deepslim.export_onnx(base, fp32, one_query, dynamic_sequence=True)
        rows = []
        for path in sorted(args.results.glob("keep*.json")):
            result = json.loads(path.read_text())
            int8 = student_dir(args.work, result["variant"]["name"], result["epochs"]) / "model.int8.onnx"
            if not int8.is_file():
                print(f"{path.stem}: no {int8} (its student folder is gone); not timed", flush=True)
                continue
            latency = {}
            for name, example, bs in (("batch1", one_query, 1), (f"batch{BATCH}", doc_batch, BATCH)):
                (row,) = compare_latency(fp32, int8, example, batch_sizes=(bs,), runtimes=("onnxruntime",),
                                         threads=default_threads())
                latency[name] = row.to_dict()
            rows.append({"file": path.name, "latency_vs_full_fp32_ort": latency})
            print(f"{path.stem}: {latency['batch1']['speedup']:.2f}x b1, {latency[f'batch{BATCH}']['speedup']:.2f}x "
                  f"b{BATCH}", flush=True)
        write_json_atomic(args.results / "latency.json", {
            "rows": rows, "sequence_lengths": lengths, "fp32_file_bytes": fp32.stat().st_size,
            "threads": default_threads(), "environment": environment(),
            "command": " ".join(["python benchmarks/minilm_recovery.py", *sys.argv[1:]])})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("train", "latency"))
    parser.add_argument("--variants", default="keep4,keep3", help="comma-separated keepK[-ffnR], default keep4,keep3")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-texts", type=int, default=30000,
                        help="distil on N training texts, half short and half long descriptions; default 30000 "
                             "(0: all of them)")
    parser.add_argument("--limit", type=int, help="smoke runs: the first N test pairs only")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/minilm_recovery"))
    parser.add_argument("--work", type=Path, default=Path("runs/minilm-recovery"))
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    data = deepslim.load_dataset("debian-descriptions")
    if args.limit:
        data.test = data.test.take(range(args.limit))
    base = deepslim.load_pretrained("minilm-l6").eval().requires_grad_(False)
    if args.stage == "latency":
        run_latency(args, base, data)
        return 0
    reference = args.results / "full.json"
    if not reference.is_file():
        write_json_atomic(reference, {"torch_fp32": judge_torch(base, data.test), "environment": environment()})
    for text in args.variants.split(","):
        variant = parse_variant(text.strip())
        out = args.results / f"{variant['name']}-e{args.epochs}.json"
        if out.is_file():
            continue
        result = run_variant(args, base, data, variant)
        result.update(command=" ".join(["python benchmarks/minilm_recovery.py", *sys.argv[1:]]),
                      threads=torch.get_num_threads(), environment=environment(), epochs=args.epochs, lr=args.lr)
        write_json_atomic(out, result)
        print(f"{variant['name']}: recall@1 {result['before_distillation']['recall@1']:.2f} -> "
              f"{result['after_distillation_torch_fp32']['recall@1']:.2f} (torch) / "
              f"{result['ort_dynamic_int8']['recall@1']:.2f} (ORT int8); {result['int8_file_bytes'] / 1e6:.1f} MB",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
