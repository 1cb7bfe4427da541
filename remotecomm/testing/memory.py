"""How much a process grows during an operation (DECISIONS.md: VmHWM after minus VmRSS
before, after resetting the peak with ``echo 5 > /proc/PID/clear_refs``)."""

from __future__ import annotations

from pathlib import Path


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {field} for process {pid}")


class GrowthMeter:
    """Peak growth of several processes across one operation, in bytes."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.before: dict[str, int] = {}

    def start(self) -> None:
        """Reset each process's peak and remember its resident size now."""
        for name, pid in self.pids.items():
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.before[name] = _status_kib(pid, "VmRSS")

    def growth(self) -> dict[str, int]:
        """VmHWM now minus VmRSS at :meth:`start`, per process, in bytes."""
        return {name: (_status_kib(pid, "VmHWM") - self.before[name]) * 1024
                for name, pid in self.pids.items()}
