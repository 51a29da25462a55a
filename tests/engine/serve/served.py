"""A real ``ttscale serve`` process on a free loopback port, for tests that talk to it as clients do.

(Not a conftest.py: the suite imports the root ``conftest`` by that name, which a second one would shadow.)
"""

import os
import signal
import subprocess
import sys
import threading
import time

from conftest import REPO

START_TIMEOUT_S = 180


class Served:
    """``ttscale serve --port 0 ARGS`` started as a subprocess; ``url`` once it prints its listening line.

    stderr is drained on a thread (``lines``) so the server never blocks on a full pipe. :meth:`stop` sends SIGTERM
    and waits; a server still alive at the end of a test is killed.
    """

    def __init__(self, *args: str, env: dict | None = None):
        cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT_S) or self.url is None:
            self.kill()
            raise AssertionError("the server did not start:\n" + "".join(self.lines[-30:]))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if "listening on http://" in line:
                self.url = line.split("listening on ")[1].split()[0]
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (killed after ``timeout`` s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(check, timeout: float = 30.0, every: float = 0.05):
    """Poll ``check()`` until it returns a true value (returned) or ``timeout`` s pass (AssertionError)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")
