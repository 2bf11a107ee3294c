"""What a bench record says about the machine it ran on (the machine behind this project changes between sessions)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``, else ``"unknown"``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def summary() -> str:
    """One line for a record's ``machine`` field, e.g. ``"AMD EPYC, x86_64, 2 cores"``."""
    return f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cores"
