"""Devices of the active Keras backend (TensorFlow, JAX or PyTorch): list, choose, mixed precision.

Nothing here assumes a GPU: with none, everything reports and runs on "cpu".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from .errors import InvalidInput


@dataclass(frozen=True)
class DeviceInfo:
    backend: str
    devices: tuple[str, ...]

    @property
    def has_gpu(self) -> bool:
        return any("gpu" in d.lower() or "cuda" in d.lower() for d in self.devices)

    @property
    def default(self) -> str:
        gpus = [d for d in self.devices if "gpu" in d.lower() or "cuda" in d.lower()]
        return gpus[0] if gpus else "cpu"


def list_devices() -> DeviceInfo:
    """What the active backend can run on, e.g. ('cpu', 'gpu:0')."""
    backend = keras.config.backend()
    devices: list[str] = ["cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        devices += [f"gpu:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    elif backend == "jax":
        import jax

        devices += [f"gpu:{d.id}" for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        devices += [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    return DeviceInfo(backend, tuple(devices))


@contextlib.contextmanager
def on_device(device: str | None) -> Iterator[str]:
    """Run the body on `device` ('cpu', 'gpu', 'gpu:N' or None for the backend's default)."""
    info = list_devices()
    if device is None:
        yield info.default
        return
    name = device.lower()
    if name == "gpu":
        name = "gpu:0"
    if name not in info.devices:
        raise InvalidInput(f"Invalid value for argument `device`: {device!r}. The {info.backend} backend has "
                           f"{list(info.devices)}; pass one of those or None.")
    backend = info.backend
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.device(name.upper().replace("GPU:", "/GPU:").replace("CPU", "/CPU:0")):
            yield name
    elif backend == "jax":
        import jax

        platform, _, index = name.partition(":")
        target = jax.devices("cpu" if platform == "cpu" else "gpu")[int(index or 0)]
        with jax.default_device(target):
            yield name
    else:
        import torch

        previous = torch.get_default_device()
        torch.set_default_device("cpu" if name == "cpu" else name.replace("gpu", "cuda"))
        try:
            yield name
        finally:
            torch.set_default_device(previous)


def set_mixed_precision(enabled: bool) -> str:
    """Switch Keras' global dtype policy; returns the policy name now in force."""
    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
