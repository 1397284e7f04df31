"""Why a job failed, so that retries go where they can help.

Peers retry everything alike: one agent burned 470 of 500 runs on CUDA out-of-memory (W&B #5088),
and hardware loss looks like a code error (ClearML #311). Here a failure is one of:

- `oom`: out of memory (host or device). Retried within the job's attempts; with `oom_halve_batch`,
  at half the batch size.
- `code`: the model or its settings are wrong (a Python error, a bad hyper-parameter). Fails at once:
  the next attempt would fail the same way.
- `data`: the data the job names is missing or damaged. Fails at once.
- `other`: anything else (a dropped connection, a crash in a library). Retried within its attempts.

`lost` (a worker that died or lost its lease) is recorded by the queue itself when another worker takes the
job over, or fails it when that was its last attempt.
"""

from __future__ import annotations

from .errors import IntegrityError, InvalidInput, NotFound, UnsafeOperation

OOM, CODE, DATA, OTHER = "oom", "code", "data", "other"
RETRIED = (OOM, OTHER)
_OOM_NAMES = ("ResourceExhaustedError", "OutOfMemoryError", "XlaRuntimeError")
_OOM_TEXT = ("out of memory", "resource_exhausted", "resource exhausted", "oom when allocating")
_CODE_ERRORS = (SyntaxError, NameError, TypeError, AttributeError, ImportError, ValueError, KeyError, IndexError,
                ZeroDivisionError, AssertionError, NotImplementedError, InvalidInput, UnsafeOperation)


def classify(error: BaseException) -> str:
    """The failure class of `error` (see the module docstring)."""
    text = str(error).lower()
    if isinstance(error, MemoryError) or (type(error).__name__ in _OOM_NAMES and any(t in text for t in _OOM_TEXT)) \
            or any(t in text for t in _OOM_TEXT):
        return OOM
    if isinstance(error, (NotFound, IntegrityError)):
        return DATA
    if isinstance(error, _CODE_ERRORS):
        return CODE
    return OTHER
