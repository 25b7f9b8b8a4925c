"""Where MAC counters disagree: deepslim vs fvcore, thop and ptflops vs an analytic count.

The analytic count is written here independently of every counter: forward hooks on the
layers that do matmul/conv-family work, each with its textbook formula. Peers are run on
the same models and inputs in the same process (shared/BENCHMARKING.md rule 6).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/profile_counters.py [--json benchmarks/results/profile_counters.json]

Prints a Markdown table (MACs in millions; "err" is the relative error vs analytic).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import warnings
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import deepslim
from deepslim.models.vit import Attention as ViTAttention
from deepslim.profiling import count_ops


# --- analytic counts -------------------------------------------------------------------
def analytic_macs(model: nn.Module, inputs: tuple) -> int:
    total = 0
    handles = []

    def conv(m, i, o):
        nonlocal total
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            total += i[0].numel() * (m.out_channels // m.groups) * int(torch.tensor(m.kernel_size).prod())
        else:
            total += o.numel() * (m.in_channels // m.groups) * int(torch.tensor(m.kernel_size).prod())

    def linear(m, i, o):
        nonlocal total
        total += o.numel() * m.in_features

    def vit_attention(m, i, o):  # QK^T and AV, on top of the q/k/v/proj Linear layers
        nonlocal total
        b, n, _ = i[0].shape
        total += 2 * b * m.num_heads * n * n * m.head_dim

    def mha(m, i, o):
        nonlocal total
        q, k = i[0], i[1]
        b, lq, e = (q.shape[0], q.shape[1], q.shape[2]) if m.batch_first else (q.shape[1], q.shape[0], q.shape[2])
        s = k.shape[1] if m.batch_first else k.shape[0]
        total += lq * b * e * e + 2 * s * b * e * e + lq * b * e * e + 2 * b * lq * s * e

    def lstm(m, i, o):
        nonlocal total
        x = i[0]
        t, b = (x.shape[1], x.shape[0]) if m.batch_first else (x.shape[0], x.shape[1])
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            in_size = m.input_size if layer == 0 else m.hidden_size * dirs
            total += dirs * t * b * gates * m.hidden_size * (in_size + m.hidden_size)

    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            handles.append(module.register_forward_hook(conv))
        elif isinstance(module, nn.Linear) and not isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear):
            handles.append(module.register_forward_hook(linear))
        elif isinstance(module, ViTAttention):
            handles.append(module.register_forward_hook(vit_attention))
        elif isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(mha))
        elif isinstance(module, nn.RNNBase):
            handles.append(module.register_forward_hook(lstm))
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return total


# --- extra models with attention and recurrence ------------------------------------------
class SDPABlock(nn.Module):
    """Functional attention with a bare-parameter projection."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Parameter(torch.randn(dim, 3 * dim) * 0.02)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (x @ self.qkv).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


def analytic_sdpa_block(model: SDPABlock, x: torch.Tensor) -> int:
    b, n, d = x.shape
    return b * n * d * 3 * d + 2 * b * n * n * d + b * n * d * d


class MHAEncoder(nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Linear(dim, dim)

    def forward(self, x):
        return self.ff(self.attn(x, x, x, need_weights=False)[0])


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


def cases():
    for name in deepslim.list_models():
        yield name, deepslim.create_model(name).eval(), (torch.randn(1, 1, 28, 28),), None
    yield "sdpa-block (bare param + SDPA)", SDPABlock().eval(), (torch.randn(1, 50, 64),), analytic_sdpa_block
    yield "nn.MultiheadAttention", MHAEncoder().eval(), (torch.randn(1, 50, 64),), None
    yield "nn.LSTM x2", LSTMClassifier().eval(), (torch.randn(1, 20, 32),), None


# --- peers --------------------------------------------------------------------------------
def quiet(fn):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn()


def run_fvcore(model, inputs):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())  # fvcore's "flop" is one fused multiply-add, i.e. a MAC


def run_thop(model, inputs):
    import copy

    from thop import profile

    macs, _ = profile(copy.deepcopy(model), inputs=inputs, verbose=False)
    return int(macs)


def run_ptflops(model, inputs):
    from ptflops import get_model_complexity_info

    shape = tuple(inputs[0].shape[1:])
    macs, _ = get_model_complexity_info(model, shape, as_strings=False, print_per_layer_stat=False, verbose=False,
                                        backend="pytorch")
    return int(macs)


def run_deepslim(model, inputs):
    return count_ops(model, inputs).macs


COUNTERS = {"deepslim": run_deepslim, "fvcore": run_fvcore, "thop": run_thop, "ptflops": run_ptflops}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    for name, model, inputs, analytic_fn in cases():
        analytic = analytic_fn(model, *inputs) if analytic_fn else analytic_macs(model, inputs)
        row = {"model": name, "analytic": analytic}
        for counter, fn in COUNTERS.items():
            try:
                row[counter] = quiet(lambda: fn(model, inputs))
            except Exception as exc:  # a peer failing on a model is itself a finding
                row[counter] = f"failed: {type(exc).__name__}"
        rows.append(row)

    def cell(value, analytic):
        if isinstance(value, str):
            return value
        err = (value - analytic) / analytic if analytic else 0.0
        return f"{value / 1e6:.3f} ({err:+.1%})" if abs(err) > 5e-4 else f"{value / 1e6:.3f} (exact)"

    print("MACs (millions) per model at batch 1; relative error vs the analytic count\n")
    print("| model | analytic | " + " | ".join(COUNTERS) + " |")
    print("|---|---:|" + "---:|" * len(COUNTERS))
    for r in rows:
        print(f"| {r['model']} | {r['analytic'] / 1e6:.3f} | " + " | ".join(cell(r[c], r["analytic"]) for c in COUNTERS) + " |")
    versions = {"date": str(date.today()), "python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("fvcore", "thop", "ptflops"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = "not installed"
    print(f"\n{versions}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "versions": versions}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
