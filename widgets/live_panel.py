"""Live training panel: curves, progress, status, Stop and Checkpoint-now, updating while training runs.

The training thread only appends rows to a deque (a few microseconds, via `panel.callback`); a
refresher thread turns them into widget updates at most `max_updates_per_s` times a second. A run
in another process or on another machine is followed by polling its log rows in the database.
The curves are a `ChartFeed` (the lab extension's charts in the browser; the kernel sends only new
points), and when the run ends the cell also gets a PNG of the final curves and a summary in words.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from typing import Any

import ipywidgets as widgets
import keras

from tensorlab.system_metrics import describe as describe_system
from tensorlab.system_metrics import sample as sample_system

from .charts import ChartFeed
from .final_curves import FinalCurves, Placeholder, curves_png, summary_line

CHARTS = [{"key": "loss", "title": "loss"}, {"key": "metrics", "title": "metrics"}]
DONE = ("finished", "failed", "stopped", "crashed")
SYSTEM_EVERY_S = 2.0  # CPU and memory figures in the panel: sampled at most this often
FOREGROUND_HINT = (
    "Training runs in the foreground, so the kernel cannot take clicks until it ends. "
    "Use tensorlab.train_in_background(...) (or %%tdb_train --background) to keep Stop usable."
)


class _FeedCallback(keras.callbacks.Callback):
    """For a foreground `fit(callbacks=[panel.callback])`: forwards rows to the panel."""

    async_safe = True

    def __init__(self, panel: LivePanel) -> None:
        super().__init__()
        self.panel = panel

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.panel._on_row("train", None, logs, self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.panel._on_row("valid", epoch, logs, self.model)


class LivePanel(widgets.VBox):
    """Watch one run. `source` is a TrainingHandle (in this kernel) or a run id/name (any process, needs db)."""

    def __init__(
        self,
        source: Any = None,
        db: Any = None,
        *,
        metrics: list[str] | None = None,
        max_updates_per_s: float = 4.0,
        poll_interval_s: float = 1.0,
        auto_refresh: bool = True,
    ) -> None:
        self.handle = source if hasattr(source, "progress") and hasattr(source, "stop") else None
        self.db = db or (getattr(getattr(self.handle, "model", None), "db", None))
        self.run_ref = None if self.handle is not None else source
        self.metrics = metrics
        self.min_interval_s = 1.0 / max_updates_per_s
        self.poll_interval_s = poll_interval_s
        self._pending: deque = deque()
        self._train: dict[str, tuple[list, list]] = {}
        self._valid: dict[str, tuple[list, list]] = {}
        self._step = 0
        self._last_row_time: float | None = None
        self._step_times: deque = deque(maxlen=50)
        self._log_cursor: Any = None  # follows the run's log buckets: each poll reads only what is new
        self._checkpoint_requested = threading.Event()
        self._stop_refresher = threading.Event()
        self.update_costs_ms: deque = deque(maxlen=1000)
        self.checkpoints_saved = 0
        self.callback = _FeedCallback(self)

        self.title = widgets.HTML()
        self.status = widgets.HTML(value="status: waiting")
        self._display: Any = None
        self._final_display: Any = None
        self.finished = threading.Event()  # set once the final state is drawn (and written into the output)
        self.chart = ChartFeed(charts=CHARTS)  # drag-zoom, hover, log y, smoothing, legend toggles: in the view
        self.progress_bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0, layout=widgets.Layout(width="40%"))
        self.progress_label = widgets.HTML(value="")
        self.stats = widgets.HTML(value="")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.checkpoint_button = widgets.Button(description="Checkpoint now", icon="save")
        self.message = widgets.Output()
        self.stop_button.on_click(self._on_stop)
        self.checkpoint_button.on_click(self._on_checkpoint)
        super().__init__([self.title, self.status, self.chart,
                          widgets.HBox([self.progress_label, self.progress_bar, self.stats]),
                          widgets.HBox([self.stop_button, self.checkpoint_button]), self.message])
        self.add_class("tensorlab-live-panel")
        if self.handle is not None:
            self.handle.listeners.append(self._on_row)
        self.refresh(force=True)
        if auto_refresh:
            self._refresher = threading.Thread(target=self._refresh_loop, daemon=True, name="tensorlab-live-panel")
            self._refresher.start()

    # -- feeding -------------------------------------------------------------------------------
    def _on_row(self, kind: str, epoch: int | None, logs: dict | None, model: Any = None) -> None:
        """Runs on the training thread: append (microseconds); a requested checkpoint is saved here."""
        self._pending.append((kind, epoch, dict(logs or {}), time.time()))
        if kind == "train" and self._checkpoint_requested.is_set():
            self._checkpoint_requested.clear()
            self._save_checkpoint_now()

    def feed_rows(self, rows: list[dict[str, Any]]) -> None:
        """Add log rows as stored in the `logs` collection (kind, step, epoch, metrics, time)."""
        for row in rows:
            self._pending.append(
                (row.get("kind", "train"), row.get("epoch"), dict(row.get("metrics", {})), row.get("time", time.time()))
            )

    def _drain(self) -> None:
        while self._pending:
            kind, epoch, metrics, stamp = self._pending.popleft()
            if kind == "train":
                self._step += 1
                if self._last_row_time is not None:
                    self._step_times.append(stamp - self._last_row_time)
                self._last_row_time = stamp
                for name, value in metrics.items():
                    if name in ("step_time", "samples_per_s", "batch") or value is None:
                        continue
                    xs, ys = self._train.setdefault(name, ([], []))
                    xs.append(self._step)
                    ys.append(float(value))
            else:
                for name, value in metrics.items():
                    if value is None:
                        continue
                    xs, ys = self._valid.setdefault(name, ([], []))
                    xs.append(self._step)  # validation overlaid on the step axis, where its epoch ended
                    ys.append(float(value))

    def _poll_database(self) -> None:
        if self.db is None or self.run_ref is None:
            return
        run = self.db.run_store.resolve(self.run_ref)
        if self._log_cursor is None or self._log_cursor.run != run["_id"]:
            self._log_cursor = self.db.logbook.cursor(run["_id"])
        rows = self._log_cursor.poll()
        self._last_poll_rows = len(rows) if run["status"] in DONE else 1
        if rows:
            self.feed_rows(sorted(rows, key=lambda row: (row.get("time") or 0, row.get("step") or 0)))
        self._remote_run = run

    # -- rendering ----------------------------------------------------------------------------
    def _status_text(self) -> tuple[str, str, float | None, str]:
        """(status, where, fraction, run name); no ETA once the run is stopping or over."""
        if self.handle is not None:
            progress = self.handle.progress
            status = "stopping" if self.handle.stopping else self.handle.status
            where = f"epoch {progress.epoch + 1}/{progress.epochs or '?'} · step {progress.step}"
            if progress.steps_per_epoch:
                where += f"/{progress.steps_per_epoch}"
            eta = progress.eta_s
            if eta is not None and status == "running":
                where += f" · ETA {eta:,.0f} s"
            fraction = 1.0 if status == "finished" else progress.fraction
            return status, where, fraction, str(self.handle.run_name)
        run = getattr(self, "_remote_run", None)
        if run is None:
            return "waiting", "", None, str(self.run_ref)
        progress = run.get("progress") or {}
        planned = run.get("epochs_planned")
        fraction = ((progress.get("epoch", -1) + 1) / planned) if planned else None
        return run["status"], f"epoch {progress.get('epoch', -1) + 1}/{planned or '?'}", fraction, run["name"]

    def _system(self) -> dict[str, Any] | None:
        """The machine's load: sampled here for a run in this kernel, else the run's last heartbeat."""
        if self.handle is not None:
            if time.monotonic() - getattr(self, "_system_at", 0.0) > SYSTEM_EVERY_S:
                self._system_at, self._system_sample = time.monotonic(), sample_system()
            return getattr(self, "_system_sample", None)
        return (getattr(self, "_remote_run", None) or {}).get("system")

    def _device(self) -> str:
        """The device the run records (read once from its run document; empty until the run exists)."""
        if getattr(self, "_device_name", None):
            return self._device_name
        run = getattr(self, "_remote_run", None)
        if run is None and self.handle is not None and self.handle.run_id is not None and self.db is not None:
            run = self.db.run_store.resolve(self.handle.run_id)
        self._device_name = (run or {}).get("device") or ""
        return self._device_name

    def _named_series(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """(loss series, other series) under honest names: Keras's per-batch values are running means over
        the epoch so far; the epoch rows hold the epoch's training mean and, as val_*, validation."""
        losses: dict[str, tuple] = {}
        others: dict[str, tuple] = {}
        for name, values in self._train.items():
            (losses if "loss" in name else others)[f"train {name} (batch)"] = values
        for name, values in self._valid.items():
            label = f"validation {name[4:]}" if name.startswith("val_") else f"train {name} (epoch)"
            (losses if "loss" in name else others)[label] = values
        if self.metrics:
            others = {k: v for k, v in others.items() if any(m in k for m in self.metrics)}
        return losses, others

    def _feed_chart(self) -> None:
        """Point the chart at the series (the panel's own lists, followed as they grow) and send what is new."""
        losses, others = self._named_series()
        self.chart.follow([{"key": name, "label": name, "chart": chart}
                           for chart, group in (("loss", losses), ("metrics", others)) for name in group],
                          {**losses, **others})
        self.chart.flush()

    def refresh(self, force: bool = False) -> None:
        """Apply pending rows to the widgets (throttled unless `force`). Never raises into the frontend."""
        started = time.perf_counter()
        try:
            self._drain()
            status, where, fraction, run_name = self._status_text()
            device = self._device()
            self.title.value = (
                f"<b>TensorLab run</b> {html.escape(run_name)}{(' · ' + html.escape(device)) if device else ''}"
            )
            note = " (after the current batch)" if status == "stopping" else ""
            self.status.value = f'status: <b class="tensorlab-status">{html.escape(status)}</b>{note}'
            self._feed_chart()
            self.progress_bar.value = fraction or 0.0
            self.progress_label.value = f'<span class="tensorlab-progress">{html.escape(where)}</span>'
            parts = [describe_system(self._system())]
            if self._step_times:
                step_time = sorted(self._step_times)[len(self._step_times) // 2]
                parts.insert(0, f"step {step_time * 1000:.1f} ms · {self._step:,} steps logged")
            self.stats.value = " · ".join(part for part in parts if part)
            done = status in DONE
            self.stop_button.disabled = done or status == "stopping"
            self.checkpoint_button.disabled = done or self.handle is None
        except Exception as error:  # noqa: BLE001 - widget code never raises into the frontend
            self.message.append_stdout(f"TensorLab panel could not refresh: {type(error).__name__}: {error}" + "\n")
        self.update_costs_ms.append((time.perf_counter() - started) * 1000)

    def show(self) -> LivePanel:
        """Display the panel, and reserve the output under it for the final curves: when the run ends, both are
        brought up to date, so a saved notebook (GitHub, nbviewer, nbval) shows the final status and curves."""
        from IPython.display import display

        self._display = display(self._repr_mimebundle_(), raw=True, display_id=True)
        self._final_display = display(Placeholder(), display_id=True)
        return self

    def _ipython_display_(self) -> None:
        """A panel as a cell's last expression reserves its final picture too (once; later, another view)."""
        if self._display is None:
            self.show()
        else:
            from IPython.display import display

            display(self._repr_mimebundle_(), raw=True)

    def final_curves(self) -> FinalCurves:
        """The run's curves as a PNG and its final figures in words."""
        losses, others = self._named_series()
        png = curves_png({"loss": losses, "metrics": others}, log_y=self.chart.log_y)
        finals = {}
        for name, (_, ys) in {**losses, **others}.items():
            values = [y for y in ys if y is not None and y == y]
            if values and "(batch)" not in name:
                finals[name] = values[-1]
        status, where, _, run_name = self._status_text()
        return FinalCurves(png, summary_line(run_name, status, where, finals))

    def finish(self) -> None:
        """Draw the final state and write it into the cell's output (the panel's text and the final curves)."""
        self.refresh(force=True)
        try:
            if self._display is not None:
                self._display.update(self._repr_mimebundle_(), raw=True)
            if self._final_display is not None:
                self._final_display.update(self.final_curves())
        except Exception as error:  # noqa: BLE001 - outside a kernel there is no output to update
            self.message.append_stdout(f"TensorLab panel could not update its output: {error}\n")
        self.finished.set()

    def _refresh_loop(self) -> None:
        last_poll = 0.0
        while not self._stop_refresher.wait(self.min_interval_s):
            if self.run_ref is not None and time.monotonic() - last_poll >= self.poll_interval_s:
                last_poll = time.monotonic()
                try:
                    self._poll_database()
                except Exception as error:  # noqa: BLE001 - shown in the panel, polling goes on
                    self.message.append_stdout(
                        f"TensorLab panel could not read the run: {type(error).__name__}: {error}" + "\n"
                    )
            if self._pending or self.handle is not None or self.run_ref is not None:
                self.refresh()
            if self.handle is not None and self.handle.done and not self._pending:
                self.finish()
                break
            if self._remote_done() and not self._pending:
                self.finish()
                break

    def _remote_done(self) -> bool:
        """A run in another process has ended and the poll after its end found no new rows."""
        run = getattr(self, "_remote_run", None)
        return run is not None and run["status"] in DONE and getattr(self, "_last_poll_rows", 1) == 0

    # -- buttons ---------------------------------------------------------------------------------
    def _on_stop(self, _button: Any = None) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.refresh(force=True)  # "stopping", with no ETA, until the run has ended
        else:
            self.message.append_stdout(
                "This panel follows a run in another process; stop it there (e.g. cancel its job)." + "\n"
            )

    def _on_checkpoint(self, _button: Any = None) -> None:
        if self.handle is None:
            self.message.append_stdout(FOREGROUND_HINT + "\n")
            return
        self._checkpoint_requested.set()

    def _save_checkpoint_now(self) -> None:
        logger = getattr(self.handle.model, "last_run", None) if self.handle is not None else None
        if logger is not None:
            logger.checkpoint_now(self.handle.progress.epoch)
            self.checkpoints_saved += 1

    def close(self) -> None:
        self._stop_refresher.set()
        super().close()

    # -- a meaningful picture without a widget manager ---------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        status, where, _, run_name = self._status_text()
        bundle["text/html"] = (
            f"<div><b>TensorLab run</b> {html.escape(run_name)} · {html.escape(status)} · {html.escape(where)}"
            "</div>"
        )
        bundle["text/plain"] = f"LivePanel(run={run_name!r}, status={status!r}, {where})"
        return bundle
