"""`python -m services.notify [serve | webhooks set|list | deliveries list]`."""

from __future__ import annotations

import argparse
import logging
import sys

from services.infra import logs
from services.infra.config import Env
from services.infra.lifecycle import freeze_start_up_heap, wait_for_shutdown_signal
from services.notify import cli

log = logging.getLogger("services.notify")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notify",
        description="LAPOR notify: email, SMS and WhatsApp to reporters, signed webhooks "
                    "to agencies")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="consume events and deliver notifications (default)")
    cli.add_commands(sub)
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        from services.notify.app import NotifyService, Settings

        settings = Settings.from_env(Env())
        logs.setup("notify", settings.log_level)
        service = NotifyService(settings).start()
        freeze_start_up_heap()
        wait_for_shutdown_signal()
        service.stop()
        return 0
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
