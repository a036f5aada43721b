"""One progress line for long work (eval, bench): live on a terminal, otherwise a log line on
stderr every few seconds, so a job under CI or nohup still shows it is alive."""

from __future__ import annotations

import sys
import time
from typing import Any


class StatusLine:
    def __init__(self, prefix: str, enabled: bool = True) -> None:
        self.prefix = prefix
        self.enabled = enabled
        self.text = "starting"
        self._live: Any = None
        self._last_log = 0.0

    def __enter__(self) -> StatusLine:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(self.text), console=Console(stderr=True), refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, text: str, force: bool = False) -> None:
        self.text = text
        if self._live is not None:
            self._live.update(self._text(text))
        elif self.enabled and (force or time.monotonic() - self._last_log >= 5.0):
            self._last_log = time.monotonic()
            print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)
