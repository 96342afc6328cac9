"""Daemons a test starts itself (pebble, lego's nginx, rtpengine, Kamailio...), each in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    log: Path
    name: str = ""

    def stop(self) -> None:
        """By process group id: the daemon and the children it forked, nothing else."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def output(self, tail: int | None = None) -> str:
        text = self.log.read_text(errors="replace")
        return text if tail is None else text[-tail:]
