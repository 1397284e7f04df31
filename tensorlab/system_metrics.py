"""What the machine is doing for a run: CPU, memory and, where the backend tells, device memory.

Sent with each run heartbeat (every HEARTBEAT_S, and once when the run starts), so a slow run shows
whether it starved for CPU, swapped, or filled its GPU, at the cost of one small update every few
seconds. Every probe is best-effort: a missing one is left out, never raised.
"""

from __future__ import annotations

import sys
from typing import Any

import psutil

_PROCESS = psutil.Process()


def _device_memory() -> dict[str, float]:
    """Bytes in use on the first accelerator, from whichever backend is loaded (nothing on a CPU)."""
    try:
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                return {"device_memory_bytes": float(torch.cuda.memory_allocated())}
        if "jax" in sys.modules:
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return {"device_memory_bytes": float((device.memory_stats() or {}).get("bytes_in_use", 0))}
        if "tensorflow" in sys.modules:
            import tensorflow as tf

            if tf.config.list_logical_devices("GPU"):
                return {"device_memory_bytes": float(tf.config.experimental.get_memory_info("GPU:0")["current"])}
    except Exception:  # noqa: BLE001 - a probe that fails is simply not reported
        return {}
    return {}


def sample() -> dict[str, Any]:
    """This process's CPU use since the last sample (% of one core), its resident memory, and the host's."""
    try:
        metrics: dict[str, Any] = {"cpu_percent": _PROCESS.cpu_percent(None), "rss_bytes": _PROCESS.memory_info().rss,
                                   "host_memory_percent": psutil.virtual_memory().percent,
                                   "cpu_count": psutil.cpu_count()}
    except (psutil.Error, OSError):
        metrics = {}
    return {**metrics, **_device_memory()}


def describe(metrics: dict[str, Any] | None) -> str:
    """`CPU 93% · RSS 1.2 GB · device 2.0 GB` for panels; empty when nothing was sampled."""
    if not metrics:
        return ""
    parts = []
    if metrics.get("cpu_percent") is not None:
        parts.append(f"CPU {metrics['cpu_percent']:.0f}%")
    if metrics.get("rss_bytes"):
        parts.append(f"RSS {metrics['rss_bytes'] / 1e9:.1f} GB")
    if metrics.get("device_memory_bytes"):
        parts.append(f"device {metrics['device_memory_bytes'] / 1e9:.1f} GB")
    return " · ".join(parts)
