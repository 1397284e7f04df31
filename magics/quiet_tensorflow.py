"""Keep TensorFlow's C++ start-up lines out of notebook cells, into a log file.

Why: `import keras` prints a red block (oneDNN, CUDA probing, CPU features) written by C++ straight to
file descriptor 2, which the kernel shows in the cell; `TF_CPP_MIN_LOG_LEVEL` no longer silences these
absl lines. While `tensorflow` is first imported, descriptor 2 points at
`~/.tensorlab/logs/tensorflow-startup.log` instead (kept, not lost). Nothing changes for a user who set
`TF_CPP_MIN_LOG_LEVEL` (their choice of what to see) or when TensorFlow is already imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tensorlab.tensordb.server.private_files import private_dir

LOG_FILE = Path.home() / ".tensorlab" / "logs" / "tensorflow-startup.log"


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, log_file: Path) -> None:
        self.loader, self.log_file = loader, log_file

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            private_dir(self.log_file.parent)  # 0700, like everything TensorLab keeps in its home
            target = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            self.loader.exec_module(module)
            return
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(target, 2)
        try:
            self.loader.exec_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(target)


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """A one-shot finder: wraps the real loader of `tensorflow`, then leaves `sys.meta_path`."""

    def __init__(self, log_file: Path = LOG_FILE) -> None:
        self.log_file = log_file

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.log_file)
        return spec


def install() -> bool:
    """Quiet the next `import tensorflow` unless it happened already or the user chose a log level."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return False
    if not any(isinstance(finder, QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlowImport())
    return True
