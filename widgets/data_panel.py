"""Data panel: the study's datasets grouped by tags with counts, and a preview grid of samples."""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as widgets
import numpy as np


def _as_image(sample: np.ndarray) -> np.ndarray | None:
    """A 2-D (grey) or HxWx3/4 image from a sample, or None when it does not look like one."""
    array = np.asarray(sample)
    if array.ndim == 1:
        side = int(round(np.sqrt(array.size)))
        if side * side != array.size or side < 4:
            return None
        array = array.reshape(side, side)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        return array
    return None


def preview_png(X: np.ndarray, labels: Any = None, columns: int = 8) -> bytes | None:  # noqa: N803
    """A grid of the first samples as one PNG (matplotlib), titled with their labels."""
    images = [_as_image(x) for x in X]
    if not images or any(image is None for image in images):
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.2), dpi=80, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap="gray" if images[index].ndim == 2 else None)
            if labels is not None:
                axis.set_title(str(labels[index]), fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


class DataPanel(widgets.VBox):
    def __init__(self, db: Any, query: dict | None = None, samples: int = 16) -> None:
        self.db, self.query, self.samples = db, query, samples
        self.summary_html = widgets.HTML()
        self.dataset_picker = widgets.Dropdown(options=[], description="dataset")
        self.preview = widgets.Image(format="png")
        self.preview_text = widgets.HTML()
        self.message = widgets.Output()
        self.dataset_picker.observe(lambda _c: self.show_preview(), names="value")
        super().__init__([self.summary_html, self.dataset_picker, self.preview, self.preview_text, self.message])
        self.add_class("tensorlab-data-panel")
        self.refresh()

    def _selected(self, tags: dict) -> dict:
        """The samples of one tag group, within the panel's query when it has one."""
        query = {f"tags.{k}": v for k, v in tags.items()}
        return {"$and": [self.query, query]} if self.query else query

    def groups(self) -> Any:
        """Imports grouped by their tags, with sample counts (with a query: only the samples it selects)."""
        summary = self.db.data_summary()
        if not len(summary):
            return summary
        summary["tags_text"] = summary["tags"].map(lambda t: ", ".join(f"{k}={v}" for k, v in sorted(t.items())))
        groups = summary.groupby("tags_text", as_index=False).agg(
            samples=("samples", "sum"),
            imports=("import_id", "count"),
            dtype=("dtype", "first"),
            sample_shape=("sample_shape", "first"),
            tags=("tags", "first"),
        )
        if self.query:  # the samples the query selects in each group; groups without any are left out
            groups["samples"] = [self.db.data_count(self._selected(tags)) for tags in groups["tags"]]
            groups = groups[groups["samples"] > 0].reset_index(drop=True)
        return groups.drop(columns="tags")

    def refresh(self) -> None:
        try:
            groups = self.groups()
            if not len(groups):
                self.summary_html.value = (f"No samples match {html.escape(repr(self.query))}." if self.query else
                                           "No data in this study yet: db.import_data(X, y, tags={...}).")
                return
            rows = "".join(
                f"<tr><td>{html.escape(r.tags_text)}</td><td>{r.samples}</td><td>{r.imports}</td>"
                f"<td>{r.dtype}</td><td>{r.sample_shape}</td></tr>"
                for r in groups.itertuples()
            )
            self.summary_html.value = (
                '<table class="tensorlab-table"><thead><tr><th>tags</th><th>samples</th>'
                f"<th>imports</th><th>dtype</th><th>shape</th></tr></thead><tbody>{rows}"
                "</tbody></table>"
            )
            self.dataset_picker.options = list(groups["tags_text"])
        except Exception as error:  # noqa: BLE001 - widget code never raises into the frontend
            self.message.append_stdout(
                f"TensorLab data panel could not refresh: {type(error).__name__}: {error}" + "\n"
            )

    def show_preview(self) -> None:
        text = self.dataset_picker.value
        if not text:
            return
        try:
            summary = self.db.data_summary()  # the picker shows text; find the typed tags behind it
            typed = next(t for t in summary["tags"] if ", ".join(f"{k}={v}" for k, v in sorted(t.items())) == text)
            X, y = self.db.find_data(self._selected(typed), limit=self.samples)
            png = preview_png(X, y)
            if png is None:
                self.preview_text.value = (
                    f"Samples of shape {X.shape[1:]} are not images; first values: "
                    f"{html.escape(np.array2string(X[:3], precision=3, threshold=20))}"
                )
                self.preview.value = b""
            else:
                self.preview.value = png
                self.preview_text.value = f"first {len(X)} samples; labels shown above each"
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self.message.append_stdout(
                f"TensorLab data panel could not preview: {type(error).__name__}: {error}" + "\n"
            )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = f"<div>{self.summary_html.value}</div>"
        bundle["text/plain"] = "DataPanel()"
        return bundle
