"""SIGINT/SIGTERM become a flag the loop reads between steps, so a stop never cuts a step in half."""

from __future__ import annotations

import signal

from ..errors import GentkError


class TrainingInterrupted(GentkError):
    """SIGINT/SIGTERM: the current step finished and a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 130 if signum == signal.SIGINT else 143


class StopSignals:
    """Within the block, SIGINT/SIGTERM set ``received``; a second Ctrl-C stops at once."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
