"""Energy and CO2e estimates, by the method of Strubell, Ganesh & McCallum (2019).

energy (kWh) = time (h) x power (kW) x PUE;  CO2e (g) = energy (kWh) x grid intensity (g/kWh).

Power comes from Intel/AMD RAPL counters when ``/sys/class/powercap`` is readable (a real
measurement of the CPU package while the work runs); otherwise from a configured wattage.
The defaults are documented in docs/profiling.md and can be changed per call or by
``DEEPSLIM_CPU_WATTS_PER_CORE``, ``DEEPSLIM_GPU_WATTS``, ``DEEPSLIM_PUE`` and
``DEEPSLIM_GRID_G_PER_KWH``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Defaults (docs/profiling.md says where each comes from).
CPU_WATTS_PER_CORE = 10.0       # ~ a server core under full load (TDP / cores of common 2-4 GHz parts)
GPU_WATTS = 300.0               # a datacenter GPU at typical training load
PUE = 1.58                      # data-centre average used by Strubell et al. (Uptime Institute, 2018)
GRID_G_PER_KWH = 475.0          # world-average grid carbon intensity (IEA, 2019)

RAPL_ROOT = Path("/sys/class/powercap")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class EnergySettings:
    """Where power comes from and how energy becomes CO2e."""

    cpu_watts_per_core: float = CPU_WATTS_PER_CORE
    gpu_watts: float = GPU_WATTS
    pue: float = PUE
    grid_g_per_kwh: float = GRID_G_PER_KWH
    use_rapl: bool = True

    @classmethod
    def from_env(cls) -> "EnergySettings":
        return cls(_env_float("DEEPSLIM_CPU_WATTS_PER_CORE", CPU_WATTS_PER_CORE),
                   _env_float("DEEPSLIM_GPU_WATTS", GPU_WATTS), _env_float("DEEPSLIM_PUE", PUE),
                   _env_float("DEEPSLIM_GRID_G_PER_KWH", GRID_G_PER_KWH))

    def configured_watts(self, device: str = "cpu", cores: int | None = None) -> float:
        if device.startswith("cuda"):
            return self.gpu_watts
        return self.cpu_watts_per_core * (cores or os.cpu_count() or 1)


def _rapl_files() -> list[Path]:
    """Package-level RAPL energy counters (intel-rapl:N/energy_uj), readable ones only."""
    files = []
    for f in sorted(RAPL_ROOT.glob("intel-rapl:*/energy_uj")) if RAPL_ROOT.is_dir() else []:
        if f.parent.name.count(":") == 1:
            try:
                int(f.read_text())
                files.append(f)
            except (OSError, ValueError):
                continue
    return files


def rapl_available() -> bool:
    return bool(_rapl_files())


def measure_power(work: Callable[[], None], seconds: float = 1.0, settings: EnergySettings | None = None,
                  device: str = "cpu", cores: int | None = None) -> dict:
    """Average power (W) while repeating ``work`` for ``seconds``: RAPL if readable, else configured.

    Example:
        >>> measure_power(lambda: None, seconds=0.01)["source"] in ("rapl", "configured")
        True
    """
    settings = settings or EnergySettings.from_env()
    files = _rapl_files() if settings.use_rapl and device == "cpu" else []
    if not files:
        return {"watts": settings.configured_watts(device, cores), "source": "configured"}
    before = [int(f.read_text()) for f in files]
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
    elapsed = time.perf_counter() - start
    after = [int(f.read_text()) for f in files]
    joules = sum((a - b) % (2**32 * 10**6) if a < b else a - b for a, b in zip(after, before)) / 1e6
    return {"watts": joules / elapsed, "source": "rapl"}


def energy_report(seconds: float, watts: float, settings: EnergySettings | None = None, *, source: str = "configured") -> dict:
    """Energy (Wh, kWh) and CO2e (g) of ``seconds`` of work drawing ``watts``.

    Example:
        >>> energy_report(3600, 100, EnergySettings(pue=1.0, grid_g_per_kwh=500))["co2e_g"]
        50.0
    """
    settings = settings or EnergySettings.from_env()
    kwh = seconds / 3600.0 * watts / 1000.0 * settings.pue
    return {"seconds": seconds, "watts": watts, "power_source": source, "pue": settings.pue,
            "energy_wh": kwh * 1000.0, "energy_kwh": kwh, "grid_g_per_kwh": settings.grid_g_per_kwh,
            "co2e_g": kwh * settings.grid_g_per_kwh}


def inference_energy_per_1000(latency_ms_per_batch: float, batch_size: int, watts: float,
                              settings: EnergySettings | None = None, *, source: str = "configured") -> dict:
    """Energy and CO2e of 1,000 predictions at a measured per-batch latency.

    Example:
        >>> inference_energy_per_1000(10.0, 1, 20.0, EnergySettings(pue=1.0))["energy_wh"]
        0.05555555555555556
    """
    seconds = latency_ms_per_batch / 1000.0 / batch_size * 1000
    report = energy_report(seconds, watts, settings, source=source)
    report["batch_size"] = batch_size
    return report


def codecarbon_measure(work: Callable[[], int], seconds: float = 2.0, country_iso_code: str = "USA") -> dict:
    """Energy and CO2e measured by codecarbon's offline tracker while repeating ``work``.

    ``work`` returns how many predictions one call made; the result is per 1,000
    predictions. Needs ``pip install codecarbon`` (deepslim's ``energy`` extra).

    Example:
        >>> codecarbon_measure(lambda: 64, seconds=1.0)["source"]   # doctest: +SKIP
        'codecarbon'
    """
    import logging

    from ..core import DeepslimError

    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError as exc:
        raise DeepslimError("codecarbon is not installed", hint="pip install codecarbon (or deepslim[energy])") from exc
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(country_iso_code=country_iso_code, save_to_file=False, log_level="error",
                                      measure_power_secs=max(0.5, seconds / 4), tracking_mode="process")
    tracker.start()
    predictions, started = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            predictions += work()
    finally:
        emissions_kg = tracker.stop() or 0.0
    data = tracker.final_emissions_data
    kwh = float(data.energy_consumed)
    scale = 1000.0 / max(1, predictions)
    return {"source": "codecarbon", "country": country_iso_code, "predictions": predictions,
            "seconds": float(data.duration), "energy_wh": kwh * 1000 * scale, "energy_kwh": kwh * scale,
            "co2e_g": emissions_kg * 1000 * scale}
