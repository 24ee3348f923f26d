"""Background work done every interval, on a daemon thread of its own, until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Runs `step` every `interval_s` seconds (`at_once`: first as it starts) until `stop`,
    which waits for the step under way."""

    def __init__(
        self, name: str, step: Callable[[], object], interval_s: float, *, at_once: bool = False
    ) -> None:
        self._step = step
        self._interval_s = interval_s
        self._at_once = at_once
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        if self._at_once:
            self._step()
        while not self._stopping.wait(self._interval_s):
            self._step()
