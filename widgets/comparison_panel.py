"""Run comparison: overlay one metric for many runs, a sortable table with the best run highlighted.

Runs are chosen by a query/tags or from a list; runs still training keep updating (the panel re-reads
their logs while any of them is running; the chart is sent only their new points). The curves and the
parallel coordinates are drawn in the browser by the lab extension's chart code (`ChartFeed`). The figure
exports as PNG (matplotlib) and the table as a DataFrame.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

from tensorlab.errors import InvalidInput
from tensorlab.metric_direction import known_direction, metric_direction
from tensorlab.table_rows import flat_row

from .charts import ChartFeed
from .refreshing import RefreshingPanel
from .table_cells import CELL_STYLE, cell_text

X_AXES = ("epoch", "step", "time")


def _plain(value: Any) -> Any:
    """A table cell as JSON: numpy numbers as Python numbers, missing values (NaN) as None."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


class ComparisonPanel(RefreshingPanel):
    def __init__(
        self,
        db: Any,
        query: dict | None = None,
        runs: list[Any] | None = None,
        *,
        metric: str = "val_accuracy",
        mode: str = "auto",
        x: str = "epoch",
        refresh_s: float = 2.0,
        auto_refresh: bool = True,
    ) -> None:
        if x not in X_AXES:
            raise InvalidInput(f"Invalid value for argument `x`: {x!r}. Expected one of {X_AXES}.")
        mode = metric_direction(metric, mode)  # val_loss sorts lowest first; an unknown metric asks for mode=
        self.db, self.query, self.mode = db, query, mode
        self._explicit_runs = runs
        self._refreshing = threading.Lock()
        self.refresh_s = refresh_s
        self._docs: list[dict] = []
        self._curves: dict[str, Any] = {}
        docs = self._load_runs(runs)
        options = [(f"{d['name']} ({str(d['_id'])[-6:]})", str(d["_id"])) for d in docs]
        self.run_picker = widgets.SelectMultiple(
            options=options, value=[v for _, v in options], rows=min(8, max(3, len(options))), description="runs"
        )
        self.metric_picker = widgets.Dropdown(options=[metric], value=metric, description="metric")
        self.x_picker = widgets.Dropdown(options=list(X_AXES), value=x, description="x axis")
        self.sort_picker = widgets.Dropdown(options=[metric], value=metric, description="sort by")
        self.descending = widgets.ToggleButton(value=mode == "max", description="descending")
        # the chosen metric per run, and below it hyper-parameters against the metric, one line per run (#15)
        self.chart = ChartFeed(height=260)
        self._drawn: tuple = ()  # (metric, x axis) the chart holds: another pair starts it over
        self.table_html = widgets.HTML()
        self.message = widgets.Output()
        for control in (self.run_picker, self.metric_picker, self.x_picker, self.sort_picker, self.descending):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__(
            [
                widgets.HBox(
                    [
                        self.run_picker,
                        widgets.VBox([self.metric_picker, self.x_picker, self.sort_picker, self.descending]),
                    ]
                ),
                self.chart,
                self.table_html,
                self.message,
            ]
        )
        self.add_class("tensorlab-comparison-panel")
        self.refresh()
        if auto_refresh:
            self._start_refreshing("tensorlab-comparison")

    # -- data -------------------------------------------------------------------------------------
    def _load_runs(self, runs: list[Any] | None) -> list[dict]:
        if runs:
            docs = [self.db.run_store.resolve(run) for run in runs]
        else:
            docs = self.db.run_store.find(self.query)
        self._docs = docs
        return docs

    def _update_runs(self) -> None:
        """Re-read running runs; a query-based panel also picks up runs that started since (selected)."""
        if self._explicit_runs:
            self._docs = [self.db.run_store.resolve(d["_id"]) if d["status"] == "running" else d for d in self._docs]
            return
        known = {str(d["_id"]) for d in self._docs}
        self._docs = self.db.run_store.find(self.query)
        fresh = [str(d["_id"]) for d in self._docs if str(d["_id"]) not in known]
        options = [(f"{d['name']} ({str(d['_id'])[-6:]})", str(d["_id"])) for d in self._docs]
        if [v for _, v in options] != [v for _, v in self.run_picker.options]:
            selected = [v for v in self.run_picker.value if v in {o[1] for o in options}] + fresh
            self.run_picker.options = options
            self.run_picker.value = tuple(selected)

    def _selected(self) -> list[dict]:
        chosen = set(self.run_picker.value)
        return [d for d in self._docs if str(d["_id"]) in chosen]

    def _metric_names(self) -> list[str]:
        names: set[str] = set()
        for doc in self._docs:
            names.update((doc.get("summary") or {}).get("best", {}))
        for frame in self._curves.values():
            names.update(
                c
                for c in frame.columns
                if c
                not in ("run", "kind", "step", "epoch", "time", "batch", "non_finite", "step_time", "samples_per_s")
            )
        return sorted(names) or [self.metric_picker.value]

    def _read_curves(self) -> None:
        for doc in self._selected():
            key = str(doc["_id"])
            if key not in self._curves or doc["status"] == "running":
                self._curves[key] = self.db.logs(run=doc["_id"])

    def table(self) -> Any:
        """Hyper-parameters and best metrics of the selected runs, sorted as the panel shows them."""
        import pandas as pd

        rows = []
        for doc in self._selected():
            best = (doc.get("summary") or {}).get("best", {})
            frame = self._curves.get(str(doc["_id"]))
            if not best and frame is not None and len(frame):  # a run still training: best so far from its logs
                best = {c: frame[c].max() if known_direction(c) == "max" else frame[c].min()
                        for c in frame.columns if c.startswith("val_") and known_direction(c) is not None}
            columns = {"run": doc["name"], "id": str(doc["_id"]), "status": doc["status"]}
            rows.append(flat_row(columns, doc.get("hyper_parameters"), {k: best[k] for k in sorted(best)}))
        frame = pd.DataFrame(rows)
        key = self.sort_picker.value
        if len(frame) and key in frame.columns:
            frame = frame.sort_values(key, ascending=not self.descending.value, na_position="last")
        return frame.reset_index(drop=True)

    def best_run(self) -> str | None:
        """Name of the best selected run by the chosen metric and mode."""
        frame = self.table()
        metric = self.metric_picker.value
        if not len(frame) or metric not in frame.columns or frame[metric].isna().all():
            return None
        index = frame[metric].idxmax() if self.mode == "max" else frame[metric].idxmin()
        return frame.loc[index, "run"]

    def _series(self) -> dict[str, tuple[list, list]]:
        metric, axis = self.metric_picker.value, self.x_picker.value
        series = {}
        for doc in self._selected():
            frame = self._curves.get(str(doc["_id"]))
            if frame is None or metric not in frame.columns:
                continue
            rows = frame[frame[metric].notna()]
            if axis == "time":
                xs = (rows["time"] - rows["time"].min()).dt.total_seconds().tolist()
            elif axis == "epoch":
                xs = (rows["epoch"].fillna(0) + (1 if metric.startswith("val_") else 0)).tolist()
            else:
                xs = rows["step"].tolist()
            series[str(doc["_id"])] = (xs, rows[metric].tolist())
        return series

    # -- rendering --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read running runs and redraw; errors are shown in the panel, never raised to the frontend."""
        if self._refreshing.locked():
            return  # a control changed by this refresh: the refresh in progress draws it
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        try:
            self._update_runs()
            self._read_curves()
            names = self._metric_names()
            for picker in (self.metric_picker, self.sort_picker):
                if list(picker.options) != names:
                    current = picker.value
                    picker.options = names  # reassign, never mutate: traitlets only sees assignment
                    picker.value = current if current in names else names[0]
            best = self.best_run()
            table = self.table()
            self._feed_chart(table, best)
            self.table_html.value = self._table_html(table, best)
        except Exception as error:  # noqa: BLE001 - widget code never raises into the frontend
            self.message.append_stdout(
                f"TensorLab comparison could not refresh: {type(error).__name__}: {error}" + "\n"
            )

    def _feed_chart(self, table: Any, best: str | None) -> None:
        """One line per selected run (new points only, unless the metric or the x axis changed), and the
        parallel coordinates of the hyper-parameters that vary between them against the sort metric."""
        metric, axis = self.metric_picker.value, self.x_picker.value
        if self._drawn != (metric, axis):
            self.chart.clear()
            self._drawn = (metric, axis)
        series = self._series()
        labels = {str(doc["_id"]): doc["name"] for doc in self._selected()}
        self.chart.charts = [{"key": "metric", "title": metric}]
        self.chart.x_axis = "step" if axis == "time" else axis
        self.chart.x_label = "seconds since the run started" if axis == "time" else ""
        self.chart.follow([{"key": run, "label": labels[run], "chart": "metric"} for run in series], series)
        self.chart.parallel = self._parallel(table, best)
        self.chart.flush()

    def _parallel(self, frame: Any, best: str | None) -> dict | None:
        """Parallel coordinates: every `hp.*` column that varies between the runs, then the sort metric."""
        metric = self.sort_picker.value
        varying = [c for c in frame.columns if c.startswith("hp.") and frame[c].astype(str).nunique() > 1]
        if not varying or metric not in frame.columns:
            return None
        runs = [{"id": row["run"], "label": row["run"],
                 "values": {c[3:] if c.startswith("hp.") else c: _plain(row[c]) for c in [*varying, metric]}}
                for _, row in frame.iterrows()]
        return {"axes": [c[3:] for c in varying] + [metric], "runs": runs, "best": best}

    @staticmethod
    def _table_html(frame: Any, best: str | None) -> str:
        head = "".join(f'<th style="{CELL_STYLE}">{html.escape(str(c))}</th>' for c in frame.columns if c != "id")
        body = []
        for _, row in frame.iterrows():
            style = ' class="tensorlab-best" style="background:#e6f4ea;font-weight:bold"' if row["run"] == best else ""
            cells = "".join(f'<td style="{CELL_STYLE}">{html.escape(cell_text(v))}</td>'
                            for c, v in row.items() if c != "id")
            body.append(f"<tr{style}>{cells}</tr>")
        return (
            f'<table class="tensorlab-table" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _should_refresh(self) -> bool:
        return not self._explicit_runs or any(d["status"] == "running" for d in self._selected())

    def to_png(self, path: str) -> str:
        """Save the overlay as a PNG with matplotlib (for reports); returns the path."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 3.5), dpi=120)
        best = self.best_run()
        names = {str(doc["_id"]): doc["name"] for doc in self._selected()}
        for run, (xs, ys) in self._series().items():
            axis.plot(xs, ys, label=names[run], linewidth=2.5 if names[run] == best else 1.2)
        axis.set_xlabel(self.x_picker.value)
        axis.set_ylabel(self.metric_picker.value)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
        return path

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = f"<div>{self.table_html.value}</div>"
        bundle["text/plain"] = f"ComparisonPanel({len(self._selected())} runs, best={self.best_run()!r})"
        return bundle
