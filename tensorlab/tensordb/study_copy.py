"""The documented path (README, docs/FORMAT.md) of `copy_study`, which lives in transfer/study_copy.py."""

from .transfer.study_copy import copy_study

__all__ = ["copy_study"]
