"""`deepslim zoo`: the registered models, data sets and shipped baselines."""

from __future__ import annotations

from ..data import DATASETS
from ..export import list_pretrained, read_metadata
from ..export.pretrained import EXTERNAL, pretrained_path
from ..models import MODELS, create_model
from .args import add_command, print_json


def add_parser(sub) -> None:
    p = add_command(sub, "zoo", help="list models, data sets and pretrained baselines",
                       description="List every registered model (with its size at the default options), "
                                   "data set and shipped pretrained baseline.")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args) -> int:
    models = []
    for name in MODELS.names():
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        models.append({"name": name, "family": MODELS.info(name).get("family", ""), "params": params,
                       "description": MODELS.info(name)["description"]})
    datasets = [{"name": n, **{k: v for k, v in DATASETS.info(n).items()}} for n in DATASETS.names()]
    pretrained = []
    for name in list_pretrained():
        if name in EXTERNAL:
            from ..text.minilm import INFO  # static: listing must not load 90 MB nor need the extra

            pretrained.append(dict(INFO))
            continue
        meta = read_metadata(pretrained_path(name))
        pretrained.append({"name": name, "model": meta.get("model"), "params": meta.get("params"),
                           "test_accuracy": meta.get("metrics", {}).get("test_accuracy"),
                           "dataset": meta.get("dataset", {}).get("name")})
    if args.json:
        print_json({"models": models, "datasets": datasets, "pretrained": pretrained})
        return 0
    print("Models (create with --model NAME; options with --model-arg KEY=VALUE)")
    print(f"  {'name':<13} {'family':<12} {'params':>10}  description")
    for m in models:
        print(f"  {m['name']:<13} {m['family']:<12} {m['params']:>10,}  {m['description']}")
    print("\nData sets (--data NAME)")
    for d in datasets:
        if "task" in d:  # text data sets have a task, not an image shape and classes
            print(f"  {d['name']:<13} task {d['task']}  {d['description']}")
            continue
        print(f"  {d['name']:<13} input {tuple(d.get('input_shape', ()))}  classes {d.get('num_classes')}  "
              f"{d['description']}")
    print("\nPretrained baselines (deepslim.load_pretrained(NAME))")
    if not pretrained:
        print("  (none shipped in this install)")
    for p in pretrained:
        if "layers" in p:
            print(f"  {p['name']:<13} model {p['model']:<11} params {p['params']:>10,}  {p['layers']} layers, hidden "
                  f"{p['hidden']}, {p['heads']} heads; {p['task']} ({p['needs']})")
            continue
        acc = f"{p['test_accuracy']:.2f}%" if p["test_accuracy"] is not None else "?"
        print(f"  {p['name']:<13} model {p['model']:<11} params {p['params']:>10,}  {p['dataset']} test accuracy {acc}")
    return 0
