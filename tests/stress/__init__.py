"""The model-based stress test: writers (worker.py), the driver and its model (model.py), the checks."""
