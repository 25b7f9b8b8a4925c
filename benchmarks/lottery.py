"""Lottery tickets on Fashion-MNIST: does the rewound ticket keep dense accuracy at >= 90% sparsity,
and do the random re-initialisation and random pruning controls fall below it?

    .venv/bin/python benchmarks/lottery.py --json benchmarks/results/lottery.json

Accuracy is on the full 10,000-image test split after every round.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, markdown_table, write_json  # noqa: E402

import deepslim  # noqa: E402
from deepslim.prune import LotteryConfig, find_lottery_ticket  # noqa: E402
from deepslim.train import TrainConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--prune-per-round", type=float, default=0.36, help="6 rounds of 0.36 reach 93.1%% sparsity")
    parser.add_argument("--rewind-step", type=int, default=430, help="about one epoch of batch-128 steps")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--subset", type=int, help="for a quick smoke run only; results are not comparable")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = deepslim.load_dataset("fashion-mnist", subset=args.subset)
    train_cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=128, seed=0)
    cfg = LotteryConfig(rounds=args.rounds, prune_per_round=args.prune_per_round, rewind_step=args.rewind_step)
    started = time.perf_counter()
    records = find_lottery_ticket(lambda: deepslim.create_model(args.model), data, train_cfg, cfg)
    seconds = time.perf_counter() - started
    dense = records[0]["ticket"]
    rows = [[r["round"], f"{100 * r['sparsity']:.1f}%", f"{r['ticket']:.2f}", f"{r['ticket'] - dense:+.2f}",
             f"{r.get('random_reinit', float('nan')):.2f}", f"{r.get('random_prune', float('nan')):.2f}"]
            for r in records]
    print(markdown_table(["round", "sparsity", "ticket acc %", "vs dense", "random re-init %", "random pruning %"], rows))
    env = environment()
    print(f"\n{args.model}, {args.epochs} epochs per round (SGD lr {args.lr}, cosine), rewind to step "
          f"{args.rewind_step}; {seconds / 60:.1f} min; {env}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "rounds": records, "seconds": seconds,
                           "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
