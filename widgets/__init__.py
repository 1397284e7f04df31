"""ipywidgets panels for TensorLab, installed as `tensorlab.widgets`."""
