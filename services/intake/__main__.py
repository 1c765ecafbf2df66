"""`python -m services.intake`: the HTTP server (waitress), metrics and health on their own
port, the outbox relay and the read-model consumer in one process, stopped in order within
LAPOR_SHUTDOWN_SECONDS on SIGTERM (services/intake/server.py)."""

from __future__ import annotations

import argparse
import sys

from services.infra import logs
from services.infra.config import Env
from services.infra.lifecycle import wait_for_shutdown_signal
from services.intake.app import create_app, settings_from_env
from services.intake.server import IntakeProcess, ServerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake",
                                     description="LAPOR intake: the HTTP edge")
    parser.parse_args(argv)
    env = Env()
    logs.setup("intake", env.str("LAPOR_LOG_LEVEL", "INFO"))
    settings = ServerSettings.from_env(env)
    process = IntakeProcess(create_app(settings_from_env(env)), settings).start()
    wait_for_shutdown_signal()
    process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
