"""One log line per interval for events a client can trigger at will (bad auth, broken HTTP).

Without a limit, a client sending garbage as fast as it can turns the server log into its
megaphone; with it, the first event of each interval is logged with the count suppressed
since the last line, and the exact numbers are in the Prometheus counters.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last = -float("inf")
        self.suppressed = 0

    def log(self, level: int, msg: str, *args, **kwargs) -> bool:
        """Logs ``msg`` (one line, never a traceback) unless a line went out less than interval_s ago."""
        with self._lock:
            now = self._clock()
            if now - self._last < self.interval_s:
                self.suppressed += 1
                return False
            suppressed, self.suppressed, self._last = self.suppressed, 0, now
        if suppressed:
            msg += f" (and {suppressed} more like it since the last such line)"
        self.logger.log(level, msg, *args, **kwargs)
        return True
