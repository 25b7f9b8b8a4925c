"""`deepslim nas enas`: ENAS one-shot search in one folder (resumable), ending in the derived child.

    deepslim nas enas --space enas-macro --data fashion-mnist --epochs 10 --out runs/enas
    deepslim nas enas ... --strategy random --out runs/enas-random      # the control at equal budget

DIR holds ``nas.json`` (space, config, data), ``checkpoint.pt`` while training, then ``supernet/`` (the
shared weights), ``search.json`` (history, controller curve, candidates, the derived arch) and ``child/``
(the derived arch as a standalone model with the shared weights, BatchNorm re-estimated: train it from
scratch or fine-tune it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..core import DeepslimError, log, resolve_device, seed_everything
from ..nas.enas_space import EnasMacroSpace
from ..nas.space import get_space, list_spaces
from .args import add_command, command_line, data_record, print_json


def add_parser(sub) -> None:
    from ..nas.controller import RLConfig
    from ..nas.enas import ENAS_STRATEGIES, EnasConfig
    from .args import amount
    from .nas import add_space_option

    d = EnasConfig()
    p = add_command(sub, "enas", help="ENAS: shared weights + an RL controller (or random / evolution controls)",
                    description="ENAS one-shot search (Pham et al. 2018): every epoch trains the shared weights of "
                                "an ENAS space, one sampled child per batch, then (strategy rl) the LSTM controller "
                                "by REINFORCE, rewarded by children's accuracy on validation minibatches. The final "
                                "arch is derived from the rest of --evaluations; random and evolution sample children "
                                "uniformly and spend the same number of child evaluations at the end. A checkpoint "
                                "after every epoch; an interrupted run continues with --resume.",
                    epilog="Example: deepslim nas enas --space enas-macro --data fashion-mnist --epochs 10 "
                           "--out runs/enas")
    p.add_argument("--space", default="enas-macro", choices=list_spaces(), help="search space, default enas-macro")
    add_space_option(p, "channels=16", EnasMacroSpace())
    p.add_argument("--data", required=True, metavar="NAME", help="data set name (see `deepslim zoo`)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs of shared-weight training, default {d.epochs}")
    p.add_argument("--out", required=True, type=Path, help="folder for the checkpoint, supernet and derived child")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--strategy", choices=ENAS_STRATEGIES, default="rl",
                   help="rl (the ENAS controller, default), random (random search with weight sharing) or evolution")
    p.add_argument("--evaluations", type=int,
                   help="child evaluations in all (controller training + deriving the final arch); default "
                        "epochs x controller steps + 100, the same for every strategy")
    p.add_argument("--controller-steps", type=int, default=d.controller_steps,
                   help=f"controller updates per epoch (rl), default {d.controller_steps}")
    p.add_argument("--macs", type=amount, metavar="M",
                   help="hardware-aware reward: limit on a child's multiply-accumulates at batch 1 (e.g. 2M); "
                        "children over it are rewarded accuracy/100 - penalty x their relative excess")
    p.add_argument("--params", type=amount, metavar="P", help="hardware-aware reward: limit on parameters, e.g. 20k")
    p.add_argument("--penalty-weight", type=float, default=RLConfig().penalty_weight,
                   help=f"weight of the relative excess over --macs/--params in the reward, default "
                        f"{RLConfig().penalty_weight:g}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"training batch size, default {d.batch_size}")
    p.add_argument("--subset", type=int, metavar="N", help="train on only N images of the training pool")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data split and search; default {d.seed}")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import save
    from ..nas.enas import EnasConfig, enas_search
    from ..nas.enas_supernet import EnasSupernet, extract_child
    from ..train import evaluate, recalibrate_batchnorm_
    from .nas import CHECKPOINT, SUPERNET, open_search_folder, space_options

    space = get_space(args.space, **space_options(args.space_option))
    if not isinstance(space, EnasMacroSpace):
        raise DeepslimError(f"`nas enas` searches ENAS spaces; '{args.space}' is a once-for-all space",
                            hint="use --space enas-macro, or `deepslim nas supernet` for once-for-all")
    if args.epochs < 1:
        raise DeepslimError(f"--epochs {args.epochs} must be >= 1", hint="e.g. --epochs 10")
    evaluations = args.evaluations if args.evaluations is not None else args.epochs * args.controller_steps + 100
    controller = dataclasses.replace(EnasConfig().controller, penalty_weight=args.penalty_weight)  # re-checked
    config = EnasConfig(strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
                        controller_steps=args.controller_steps, evaluations=evaluations, seed=args.seed,
                        max_macs=args.macs, max_params=args.params, controller=controller)
    out = args.out
    identity = {"space": space.to_dict(), "config": config.to_dict(),
                "data": {"name": args.data, "subset": args.subset, "seed": args.seed}}
    data = open_search_folder(args, space, identity)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    net = EnasSupernet.from_space(space)
    args.interrupt_hint = (f"the last finished epoch is saved in {out / CHECKPOINT}; rerun the same command with "
                           "--resume to continue")
    log(f"ENAS ({config.strategy}): {config.epochs} epochs on {len(data.train):,} training images of {data.name}, "
        f"{config.evaluations} child evaluations on validation minibatches of {config.reward_batch}")
    result = enas_search(net, data.train, data.val, config, checkpoint=out / CHECKPOINT, resume=args.resume,
                         device=device)
    args.interrupt_hint = None
    net = net.cpu().eval()
    child = extract_child(net, result.best["arch"])
    recalibrate_batchnorm_(child, data.train.images[:2000])
    val = evaluate(child.eval(), data.val, desc="val")["accuracy"]
    summary = {"out": str(out), "strategy": config.strategy, "arch": result.best["arch"],
               "reward_accuracy": result.best["reward_accuracy"], "val_accuracy_shared_weights": val,
               "evaluations": result.evaluations, "search_seconds": result.seconds}
    if config.constraints.active():  # the hardware-aware reward: the limits and where the derived arch stands
        summary.update(limits=config.constraints.describe(),
                       **{k: result.best[k] for k in ("macs", "params", "violation")})
    meta = {"nas": {"role": "enas-supernet", "space": space.to_dict(), "config": config.to_dict(),
                    "data": data_record(data, args.subset), "command": command_line(args), **summary}}
    child_meta = {"nas": {"space": space.to_dict(), "arch": result.best["arch"], "search": summary},
                  "dataset": data.describe(), "input_shape": [1, *data.input_shape],
                  "note": "shared ENAS weights, BatchNorm re-estimated on 2,000 training images: train it from "
                          "scratch (or fine-tune it) before use"}
    (out / "search.json").write_text(json.dumps({**result.to_dict(), **summary}, indent=1))
    save(child, out / "child", metadata=child_meta, overwrite=True)
    save(net, out / SUPERNET, metadata=meta, overwrite=True)  # last: a folder with it is finished, else resumable
    (out / CHECKPOINT).unlink(missing_ok=True)
    if args.json:
        print_json(summary)
    else:
        print(f"derived arch ({config.strategy}, {result.evaluations} child evaluations): "
              f"{' '.join(result.best['arch']['ops'])}; validation accuracy with the shared weights {val:.2f}%")
        if "macs" in summary:
            within = "within" if summary["violation"] == 0 else "over (no candidate met them)"
            print(f"{summary['macs'] / 1e6:.2f}M MACs, {summary['params'] / 1e3:.1f}k params: {within} "
                  f"{summary['limits']}")
        print(f"saved: {out / SUPERNET}, {out / 'child'} (train it from scratch), {out / 'search.json'}")
    return 0
