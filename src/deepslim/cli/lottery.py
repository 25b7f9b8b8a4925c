"""`deepslim lottery`: lottery-ticket rounds with rewinding and controls; table, JSON and PNG."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError, log
from ..core.text import plural
from ..data import load_dataset
from ..export.files import write_atomic, write_json_atomic
from ..models import create_model
from ..prune import LotteryConfig, find_lottery_ticket
from ..train import TrainConfig
from .args import (
    add_command,
    add_data_args,
    add_subset_arg,
    data_options,
    data_record,
    parse_kwargs,
    print_json,
    training_images,
)


def add_parser(sub) -> None:
    p = add_command(sub, "lottery", help="find a lottery ticket (IMP with rewinding)",
                    description="Iterative magnitude pruning with weight rewinding (Frankle & Carbin 2019; Frankle "
                                "et al. 2020), with the random re-initialisation and random pruning controls. Reports "
                                "full-test accuracy against sparsity per round.")
    p.add_argument("--model", required=True, help="zoo model name (e.g. lenet5)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    add_data_args(p, required=True)
    p.add_argument("--rounds", type=int, default=5, help="pruning rounds, default 5")
    p.add_argument("--prune-per-round", type=float, default=0.2,
                   help="fraction of the remaining weights pruned per round, default 0.2")
    p.add_argument("--rewind-step", type=int, default=0, help="optimizer step to rewind to, default 0 (initialisation)")
    p.add_argument("--no-controls", action="store_true", help="skip the random re-init and random pruning controls")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per round, default 5")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size, default 128")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate, default 0.05")
    add_subset_arg(p, "every round's training")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and the training, default 0")
    p.add_argument("--out", required=True, type=Path, help="folder for lottery.json and lottery.png")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    if (args.out / "lottery.json").exists() and not args.overwrite:
        raise DeepslimError(f"{args.out} already holds lottery results", hint="use --overwrite or another --out")
    cfg = LotteryConfig(rounds=args.rounds, prune_per_round=args.prune_per_round, rewind_step=args.rewind_step,
                        controls=not args.no_controls)
    data = load_dataset(args.data, subset=args.subset, seed=args.seed, **data_options(args))
    log(f"data: every round trains {plural(args.epochs, 'epoch')} on {training_images(data, args.subset)}; "
        f"accuracy on all {plural(len(data.test), 'test image')}")
    kwargs = {"in_channels": data.input_shape[0], "num_classes": data.num_classes, **parse_kwargs(args.model_arg)}
    create_model(args.model, **kwargs)  # fail fast on a bad name or option
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    records = find_lottery_ticket(lambda: create_model(args.model, **kwargs), data, train_cfg, cfg)
    result = {"model": args.model, "model_kwargs": kwargs, "data": args.data, "config": cfg.to_dict(),
              "train": train_cfg.to_dict(), "train_data": data_record(data, args.subset), "rounds": records}
    write_json_atomic(args.out / "lottery.json", result)
    _plot(records, args.out / "lottery.png", args.model)
    if args.json:
        print_json(result)
        return 0
    print(f"{'round':>5} {'sparsity':>9} {'ticket':>8} {'re-init':>8} {'random':>8}   (full-test accuracy %)")
    for r in records:
        ctl = (f"{r['random_reinit']:>8.2f} {r['random_prune']:>8.2f}" if "random_reinit" in r else f"{'':>8} {'':>8}")
        print(f"{r['round']:>5} {r['sparsity']:>8.1%} {r['ticket']:>8.2f} {ctl}")
    print(f"wrote {args.out / 'lottery.json'} and {args.out / 'lottery.png'}")
    return 0


def _plot(records: list[dict], path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for key, label in (("ticket", "winning ticket (rewound)"), ("random_reinit", "random re-init"),
                       ("random_prune", "random pruning")):
        pts = [(100 * r["sparsity"], r[key]) for r in records if key in r]
        if key != "ticket":
            pts = [(0.0, records[0]["ticket"])] + pts
        if len(pts) > 1:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("weights pruned (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Lottery tickets: {model}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
