"""LAPOR notify: turns events into email to reporters and signed webhooks to agencies, with
retries and a delivery log. The only service that keeps reporters' contact details."""
