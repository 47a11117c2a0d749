"""Memory figures of a process from ``/proc/<pid>/status``, in KiB."""

from __future__ import annotations

from pathlib import Path


def status_kib(pid: int | str, field: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (the peak since exec or the last ``clear_refs``) of
    ``pid`` ("self": this process); None when the process has no address space left (a zombie).
    OSError when it is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None
