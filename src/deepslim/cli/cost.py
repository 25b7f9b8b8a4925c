"""`deepslim cost`: FLOPs, time, energy and CO2e of a planned training run."""

from __future__ import annotations

from ..core import resolve_device
from ..core.text import plural
from ..data import load_dataset
from ..models import list_models
from ..profiling.energy import EnergySettings, energy_report, measure_power
from ..profiling.training_cost import time_training_steps, training_step_flops
from .args import add_command, add_data_args, data_options, parse_kwargs, print_json, training_images
from .resolve import add_model_source_args, resolve_model


def add_parser(sub) -> None:
    p = add_command(sub, "cost", help="estimate the cost of a training run",
                    description="Estimate a planned training run: FLOPs of one training step (forward + backward, "
                                "counted) x steps, time from a few measured steps, energy = time x power x PUE and "
                                "CO2e = energy x grid intensity (Strubell et al., 2019).")
    add_model_source_args(p)
    add_data_args(p, required=True)
    p.add_argument("--epochs", type=int, required=True, help="planned training epochs")
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--subset", type=int, metavar="N", help="the planned run uses only N images of the training pool "
                   "(as `deepslim train --subset N`)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    data = load_dataset(args.data, subset=args.subset, **data_options(args))
    kwargs = parse_kwargs(args.model_arg)
    if args.model and not args.model_dir and args.model in list_models():
        kwargs.setdefault("in_channels", data.input_shape[0])
        kwargs.setdefault("num_classes", data.num_classes)
    resolved = resolve_model(args.model, args.model_dir, kwargs)
    device = resolve_device(args.device)
    model = resolved.model.to(device)
    batch = data.train.images[: args.batch_size].to(device)
    flops_per_sample = training_step_flops(model, batch) / len(batch)
    step_seconds = time_training_steps(model, batch)
    steps_per_epoch = len(data.train) // args.batch_size
    samples = steps_per_epoch * args.batch_size * args.epochs
    seconds = step_seconds * steps_per_epoch * args.epochs
    settings = EnergySettings.from_env()
    power = measure_power(lambda: None, seconds=0.1, settings=settings, device=device.type)
    energy = energy_report(seconds, power["watts"], settings, source=power["source"])
    result = {"model": resolved.label, "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
              "train_images": len(data.train), "steps": steps_per_epoch * args.epochs,
              "flops_per_training_sample": flops_per_sample, "total_flops": flops_per_sample * samples,
              "seconds_per_step": step_seconds, "estimated_seconds": seconds, "device": str(device), **energy}
    if args.json:
        print_json(result)
        return 0
    print(f"{resolved.label} on {args.data}: {plural(args.epochs, 'epoch')} x {plural(steps_per_epoch, 'step')} "
          f"of {args.batch_size} ({training_images(data, args.subset)})")
    print(f"  FLOPs per training image (forward + backward): {flops_per_sample / 1e6:.1f} M")
    print(f"  total FLOPs: {result['total_flops']:.3g}")
    print(f"  time: {step_seconds * 1000:.0f} ms per step measured on {device} -> {seconds / 60:.1f} min")
    print(f"  energy: {energy['energy_kwh'] * 1000:.1f} Wh ({power['watts']:.0f} W {power['source']}, PUE {energy['pue']})"
          f" -> {energy['co2e_g']:.1f} g CO2e at {energy['grid_g_per_kwh']:.0f} g/kWh")
    return 0
