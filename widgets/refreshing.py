"""A panel that re-reads the database every `refresh_s` seconds on a daemon thread until it is closed."""

from __future__ import annotations

import threading

import ipywidgets as widgets


class RefreshingPanel(widgets.VBox):
    refresh_s: float = 2.0

    def refresh(self) -> None:  # pragma: no cover - every panel defines it
        raise NotImplementedError

    def _should_refresh(self) -> bool:
        """Whether the next tick re-reads; a panel with nothing live may say no."""
        return True

    def _start_refreshing(self, name: str) -> None:
        self._stop_refreshing = threading.Event()
        threading.Thread(target=self._refresh_loop, daemon=True, name=name).start()

    def _refresh_loop(self) -> None:
        while not self._stop_refreshing.wait(self.refresh_s):
            if self._should_refresh():
                self.refresh()

    def close(self) -> None:
        if hasattr(self, "_stop_refreshing"):
            self._stop_refreshing.set()
        super().close()
