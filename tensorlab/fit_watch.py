"""Is the `fit` a callback belongs to still running? Keras 3 tells callbacks when training ends well
(`on_train_end`) but nothing when an exception or a KeyboardInterrupt ends it.

A bare `model.fit(callbacks=[DBLogger(...)])` interrupted by Ctrl-C left its run `running` and its
heartbeat thread beating forever. At `on_train_begin` we keep the frame of the `fit` call (the frame that
called Keras' `CallbackList`) and the thread running it; `running()` then asks whether that frame is
still on that thread's stack, which costs a walk of a few dozen frames and needs no hook inside Keras.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

_CALLBACK_LIST = "callback_list.py"


def _fit_frame() -> FrameType | None:
    """The frame that called Keras' CallbackList (the trainer's `fit`), seen from inside a callback hook."""
    frame = sys._getframe(1)
    while frame is not None and not frame.f_code.co_filename.endswith(_CALLBACK_LIST):
        frame = frame.f_back
    while frame is not None and frame.f_code.co_filename.endswith(_CALLBACK_LIST):
        frame = frame.f_back
    return frame


class FitWatch:
    """Created in a callback's `on_train_begin`; `running()` is False once that `fit` has returned or raised."""

    def __init__(self) -> None:
        self._frame = _fit_frame()
        self._thread_id = threading.get_ident()

    @property
    def watching(self) -> bool:
        """False when the hook was not called by Keras' fit (e.g. a test calling it by hand): nothing to watch."""
        return self._frame is not None

    def running(self) -> bool:
        if self._frame is None:
            return True
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            if frame is self._frame:
                return True
            frame = frame.f_back
        return False

    def callbacks(self) -> list[Any]:
        """The callbacks of this fit (to name the one that stopped it), read from the fit's `callbacks` local."""
        if self._frame is None:
            return []
        return list(getattr(self._frame.f_locals.get("callbacks"), "callbacks", None) or [])

    def forget(self) -> None:
        """Drop the frame once the fit has ended, so the callback keeps no reference to its locals."""
        self._frame = None
