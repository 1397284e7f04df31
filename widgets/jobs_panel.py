"""Job queue panel: jobs with status, worker, attempts, progress and age; cancel, requeue and priority."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from tensorlab.clock import as_utc, utc_now

from .refreshing import RefreshingPanel
from .table_cells import CELL_STYLE, MISSING, cell_text

COLUMNS = ("job", "stage", "after", "status", "hyper-parameters", "run", "worker", "attempts", "progress", "priority",
           "age", "error")

STATUS_COLORS = {"queued": "#555", "running": "#1f77b4", "done": "#2ca02c", "failed": "#d62728", "cancelled": "#999"}


def _age(created: Any) -> str:
    if created is None:
        return ""
    seconds = (utc_now() - as_utc(created)).total_seconds()
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


class JobQueuePanel(RefreshingPanel):
    def __init__(
        self,
        db: Any,
        query: dict | None = None,
        *,
        status: str | None = None,
        limit: int = 50,
        refresh_s: float = 2.0,
        auto_refresh: bool = True,
    ) -> None:
        self.db, self.query, self.status_filter, self.limit = db, query, status, limit
        self.refresh_s = refresh_s
        self.table_html = widgets.HTML()
        self.summary = widgets.HTML()
        self.job_picker = widgets.Dropdown(options=[], description="job")
        self.cancel_button = widgets.Button(description="Cancel", icon="ban")
        self.requeue_button = widgets.Button(description="Requeue", icon="redo")
        self.priority = widgets.IntText(value=0, description="priority", layout=widgets.Layout(width="180px"))
        self.priority_button = widgets.Button(description="Set priority", icon="sort")
        self.message = widgets.Output()
        self.cancel_button.on_click(lambda _b: self._act("cancel", lambda job: self.db.jobs.cancel(job)))
        self.requeue_button.on_click(lambda _b: self._act("requeue", lambda job: self.db.jobs.requeue(job)))
        self.priority_button.on_click(
            lambda _b: self._act("set priority", lambda job: self.db.jobs.set_priority(job, self.priority.value))
        )
        super().__init__(
            [
                self.summary,
                self.table_html,
                widgets.HBox([self.job_picker, self.cancel_button, self.requeue_button]),
                widgets.HBox([self.priority, self.priority_button]),
                self.message,
            ]
        )
        self.add_class("tensorlab-jobs-panel")
        self.refresh()
        if auto_refresh:
            self._start_refreshing("tensorlab-jobs-panel")

    def jobs(self) -> list[dict]:
        """Queued and running jobs and the `limit` newest others (or what `query` selects): a poll costs what it
        shows, however long the queue's history."""
        return self.db.jobs.recent(self.limit, self.query, status=self.status_filter)

    def refresh(self) -> None:
        try:
            jobs = self.jobs()
            counts: dict[str, int] = {}
            for job in jobs:
                counts[job["status"]] = counts.get(job["status"], 0) + 1
            self.summary.value = " · ".join(f"{k}: <b>{v}</b>" for k, v in sorted(counts.items())) or "no jobs"
            rows = []
            for job in jobs:
                progress = job.get("progress") or {}
                color = STATUS_COLORS.get(job["status"], "#000")
                hyper = job.get("hyper_parameters") or {}
                cells = [
                    str(job["_id"])[-8:],
                    html.escape(str((job.get("tags") or {}).get("stage") or MISSING)),
                    ", ".join(str(before)[-8:] for before in job.get("after") or []) or MISSING,
                    f'<span style="color:{color}">{job["status"]}</span>',
                    html.escape(", ".join(f"{k}={cell_text(v)}" for k, v in sorted(hyper.items()))) or MISSING,
                    html.escape(f"job-{job['_id']}") if job.get("run") else MISSING,
                    html.escape(str(job.get("worker") or "")),
                    f"{job['attempts']}/{job['max_attempts']}",
                    html.escape(", ".join(f"{k} {v}" for k, v in progress.items())) if progress else "",
                    str(job["priority"]),
                    _age(job.get("created")),
                    html.escape(str(job.get("error") or ""))[:80],
                ]
                rows.append("<tr>" + "".join(f'<td style="{CELL_STYLE}">{c}</td>' for c in cells) + "</tr>")
            head = "".join(f'<th style="{CELL_STYLE}">{h}</th>' for h in COLUMNS)
            self.table_html.value = (
                f'<table class="tensorlab-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            )
            options = [(f"{str(j['_id'])[-8:]} ({j['status']})", str(j["_id"])) for j in jobs]
            if [v for _, v in options] != [v for _, v in self.job_picker.options]:
                current = self.job_picker.value
                self.job_picker.options = options
                values = [v for _, v in options]
                self.job_picker.value = current if current in values else (values[0] if values else None)
        except Exception as error:  # noqa: BLE001 - widget code never raises into the frontend
            self.message.append_stdout(f"TensorLab job panel could not refresh: {type(error).__name__}: {error}" + "\n")

    def _act(self, what: str, action: Any) -> None:
        job = self.job_picker.value
        if job is None:
            return
        try:
            action(job)
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self.message.append_stdout(f"Could not {what} job {job[-8:]}: {error}" + "\n")
        self.refresh()


    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = f"<div>{self.summary.value}{self.table_html.value}</div>"
        bundle["text/plain"] = f"JobQueuePanel({self.summary.value})"
        return bundle
