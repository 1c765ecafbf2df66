"""Infrastructure the three services share: config, logs, storage, events, outbox, messaging,
telemetry. Domain logic never lives here."""
