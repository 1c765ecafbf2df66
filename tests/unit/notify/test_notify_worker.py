"""The worker's lease against the time one send can take."""

import pytest

from services.notify.channels import SmtpSettings, send_limit
from services.notify.worker import LEASE_MARGIN_S, WorkerSettings


def settings(webhook_timeout: float, smtp_timeout: float) -> WorkerSettings:
    return WorkerSettings(smtp=SmtpSettings("127.0.0.1", 25), mail_from="x@lapor.localhost",
                          public_url="https://lapor.example.go.id", retry_delays=(30.0,),
                          webhook_timeout=webhook_timeout, smtp_timeout=smtp_timeout,
                          poll_interval=1.0)


@pytest.mark.parametrize("webhook_timeout, smtp_timeout", [(10, 10), (1, 60), (45, 2)])
def test_the_lease_outlasts_the_longest_send_by_the_margin(webhook_timeout, smtp_timeout):
    worker = settings(webhook_timeout, smtp_timeout)
    longest = max(send_limit(webhook_timeout), send_limit(smtp_timeout))
    assert worker.send_limit == longest
    assert worker.lease.total_seconds() == 2 * longest + LEASE_MARGIN_S
    assert LEASE_MARGIN_S > 0
