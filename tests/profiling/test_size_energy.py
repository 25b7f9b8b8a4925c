import math

import pytest
import torch
from torch import nn

from deepslim.profiling.energy import EnergySettings, energy_report, inference_energy_per_1000, measure_power
from deepslim.profiling.size import compact_tensor_bytes, compact_weight_bytes, path_bytes


def test_dense_tensor_stays_dense():
    t = torch.randn(1000)
    assert compact_tensor_bytes(t) == 4000


def test_binary_and_ternary_weights_pack_to_bits():
    binary = torch.randint(0, 2, (1024,)).float() * 2 - 1
    assert compact_tensor_bytes(binary) == 1024 // 8 + 2 * 4  # 1 bit each + the two values
    ternary = torch.randint(-1, 2, (1024,)).float() * 0.5
    nonzero = int(ternary.count_nonzero())
    two_bit_codebook = 1024 * 2 // 8 + 3 * 4
    bitmask_plus_sign_bit = 1024 // 8 + math.ceil(nonzero / 8) + 2 * 4
    assert compact_tensor_bytes(ternary) == min(two_bit_codebook, bitmask_plus_sign_bit)


def test_sparse_weights_use_a_bitmask():
    t = torch.randn(10_000)
    t[torch.randperm(10_000)[:9_000]] = 0
    assert compact_tensor_bytes(t) == 10_000 // 8 + 1_000 * 4
    sizes = compact_weight_bytes(nn.Linear(10, 10))
    assert sizes["dense_bytes"] == sizes["compact_bytes"] == 110 * 4


def test_path_bytes_of_file_and_folder(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 5)
    assert path_bytes(tmp_path / "a") == 10 and path_bytes(tmp_path) == 15


def test_energy_is_time_power_pue_and_co2e_is_energy_times_intensity():
    settings = EnergySettings(pue=1.5, grid_g_per_kwh=400.0)
    report = energy_report(7200, 50.0, settings)
    assert report["energy_kwh"] == pytest.approx(2 * 0.05 * 1.5)
    assert report["co2e_g"] == pytest.approx(2 * 0.05 * 1.5 * 400)
    per_1000 = inference_energy_per_1000(8.0, 4, 20.0, settings)  # 2 ms per image -> 2 s per 1000
    assert per_1000["seconds"] == pytest.approx(2.0)
    assert per_1000["energy_wh"] == pytest.approx(2.0 / 3600 * 20 * 1.5)


def test_power_falls_back_to_configured_watts(monkeypatch, tmp_path):
    import deepslim.profiling.energy as energy

    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path / "no-powercap")
    power = measure_power(lambda: None, seconds=0.01, settings=EnergySettings(cpu_watts_per_core=7.0), cores=3)
    assert power == {"watts": 21.0, "source": "configured"}
    assert measure_power(lambda: None, settings=EnergySettings(gpu_watts=250), device="cuda")["watts"] == 250


def test_rapl_counters_are_read_when_present(monkeypatch, tmp_path):
    import deepslim.profiling.energy as energy

    counter = tmp_path / "intel-rapl:0" / "energy_uj"
    counter.parent.mkdir()
    counter.write_text("1000000")
    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path)

    def work():  # the package used 5 J while the work ran
        counter.write_text("6000000")

    power = measure_power(work, seconds=0.05)
    assert power["source"] == "rapl" and 0 < power["watts"] <= 5 / 0.05


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("DEEPSLIM_PUE", "1.1")
    monkeypatch.setenv("DEEPSLIM_GRID_G_PER_KWH", "50")
    s = EnergySettings.from_env()
    assert (s.pue, s.grid_g_per_kwh) == (1.1, 50.0)


def test_codecarbon_missing_is_a_clear_error(monkeypatch):
    import builtins

    from deepslim.core import DeepslimError
    from deepslim.profiling.energy import codecarbon_measure

    real_import = builtins.__import__

    def no_codecarbon(name, *args, **kwargs):
        if name.startswith("codecarbon"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_codecarbon)
    with pytest.raises(DeepslimError, match="codecarbon is not installed"):
        codecarbon_measure(lambda: 1, seconds=0.01)


def test_codecarbon_measures_when_installed():
    pytest.importorskip("codecarbon")
    from deepslim.profiling.energy import codecarbon_measure

    result = codecarbon_measure(lambda: 10, seconds=1.0)
    assert result["source"] == "codecarbon" and result["predictions"] >= 10 and result["energy_wh"] > 0
