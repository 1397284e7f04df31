"""The documented path (README) of `export_study` and `import_study`, which live in transfer/study_export.py."""

from .transfer.study_export import export_study, import_study

__all__ = ["export_study", "import_study"]
