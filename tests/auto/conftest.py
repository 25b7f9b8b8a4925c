"""A tiny `deepslim auto` setting: fmnist-cnn (untrained) on 128 synthetic images, proxies of 64 images,
latency windows of 20 ms. Accuracy means nothing here; the plumbing (study, resume, workers, Ray,
storage, the result contract) is what these tests check."""

import sys

import pytest
import torch

from deepslim.auto import AutoConfig, parse_target
from deepslim.data import load_dataset
from deepslim.models import create_model

TINY_ARGS = ["--model", "fmnist-cnn", "--data", "synthetic", "--subset", "128", "--proxy-images", "64",
             "--proxy-epoch-scale", "0.1", "--latency-seconds", "0.02", "--final-latency-seconds", "0.02",
             "--top-k", "1", "--device", "cpu", "--quiet"]


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = create_model("fmnist-cnn")
    data = load_dataset("synthetic", subset=128)
    spec = {"name": "synthetic", "subset": 128, "options": {}}
    return model, data, spec


def tiny_config(**kwargs) -> AutoConfig:
    settings = dict(max_drop=100.0, budget_s=900.0, trials=3, top_k=1, proxy_images=64, proxy_epoch_scale=0.1,
                    proxy_slack=0.0, latency_seconds=0.02, final_latency_seconds=0.02, sampler="random")
    settings.update(kwargs)
    target = settings.pop("target", "macs<=1e9")
    return AutoConfig(target=parse_target(target), **settings)


@pytest.fixture
def config_factory():
    return tiny_config


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "deepslim", "auto", *TINY_ARGS, *args]


@pytest.fixture
def auto_cli():
    return cli


@pytest.fixture
def psycopg_works() -> bool:
    """deepslim[auto]'s PostgreSQL driver imports here (it needs libpq too): the storage errors differ without it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True
