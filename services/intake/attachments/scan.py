"""The virus-scan hook: INTAKE_VIRUS_SCAN_COMMAND (e.g. `clamdscan --no-summary -`) gets the
file on stdin; exit 0 is clean, 1 infected, anything else (or no answer within the timeout)
means the file could not be scanned and is not stored."""

from __future__ import annotations

import logging
import shlex
import subprocess
from enum import StrEnum

from prometheus_client import Counter

log = logging.getLogger(__name__)

SCANS = Counter("lapor_attachment_scans_total", "Virus scans of attachments by outcome",
                ["outcome"])


class ScanResult(StrEnum):
    CLEAN = "clean"
    INFECTED = "infected"
    FAILED = "failed"
    SKIPPED = "skipped"  # no scanner configured


for _outcome in ScanResult:
    SCANS.labels(_outcome.value)


class Scanner:
    def __init__(self, command: str, timeout: float = 30.0):
        self.argv = shlex.split(command) if command else []
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        return bool(self.argv)

    def scan(self, data: bytes) -> ScanResult:
        if not self.argv:
            result = ScanResult.SKIPPED
        else:
            result = self._run(data)
        SCANS.labels(result.value).inc()
        return result

    def _run(self, data: bytes) -> ScanResult:
        try:
            done = subprocess.run(self.argv, input=data, capture_output=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            log.warning("virus scan gave no answer within %.0fs", self.timeout)
            return ScanResult.FAILED
        except OSError as exc:
            log.warning("virus scan could not run (%s)", exc.strerror or type(exc).__name__)
            return ScanResult.FAILED
        if done.returncode == 0:
            return ScanResult.CLEAN
        if done.returncode == 1:
            log.warning("virus scan found an infected file")
            return ScanResult.INFECTED
        log.warning("virus scan failed with exit status %d", done.returncode)
        return ScanResult.FAILED
