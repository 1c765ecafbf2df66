"""The virus-scan hook: INTAKE_VIRUS_SCAN_COMMAND (e.g. `clamdscan --no-summary -`) gets the
file on stdin; exit 0 is clean, 1 infected, anything else (or no answer within the timeout)
means the file could not be scanned and is not stored."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
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
            # Its own process group, so a timeout ends the scanner's children too (a shell
            # script's child would otherwise hold the pipes open past the timeout).
            process = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        except OSError as exc:
            log.warning("virus scan could not run (%s)", exc.strerror or type(exc).__name__)
            return ScanResult.FAILED
        try:
            process.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            log.warning("virus scan gave no answer within %.1fs", self.timeout)
            return self._kill(process)
        except OSError:  # the scanner closed stdin before reading it all
            log.warning("virus scan stopped reading the file")
            return self._kill(process)
        if process.returncode == 0:
            return ScanResult.CLEAN
        if process.returncode == 1:
            log.warning("virus scan found an infected file")
            return ScanResult.INFECTED
        log.warning("virus scan failed with exit status %d", process.returncode)
        return ScanResult.FAILED

    @staticmethod
    def _kill(process: subprocess.Popen) -> ScanResult:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return ScanResult.FAILED
