"""What several test files share: launching nteach in processes of its own (torchrun, SIGTERM), and a
stand-in for the Ctrl-C event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def terminate_after_first_checkpoint(command: list[str], out: Path) -> subprocess.CompletedProcess:
    """Start ``command``, send it SIGTERM once its first checkpoint is written in ``out``, and wait."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 90
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


class StopAfter:
    """Stands in for the Ctrl-C event: reports 'set' once ``calls`` steps have asked about it."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0
