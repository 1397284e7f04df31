"""IPython magics for TensorLab, installed as `tensorlab.magics` and loaded by `%load_ext tensorlab`."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Register the TensorLab magics with `ipython`; TensorFlow's C++ start-up lines go to a log file."""
    from .quiet_tensorflow import install
    from .tdb_magics import TensorLabMagics

    install()
    ipython.register_magics(TensorLabMagics)
