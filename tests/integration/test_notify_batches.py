"""notify's event handler on a batch of events (what its consumer hands it under load), on a
real SQLite and PostgreSQL: read ahead in one statement each (which events are new, the
reporters' contacts, the followers) and the deliveries inserted together, it writes what
handling the same events one by one writes, including where one event of the batch depends
on another before it: a contact that comes after its ticket, a follower linked before the
master changes, two events of one change of the ticket, the same event twice."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.notify import store
from services.notify.handler import WAITING_FOR_CONTACT
from tests.integration import test_notify_workflow as workflow
from tests.integration.test_notify_workflow import (
    AGENCY,
    DISP,
    FUP,
    NAME,
    PARENT,
    changed,
    dispatched,
    escalated,
    new_tracking_id,
)

pytestmark = pytest.mark.integration

handler = workflow.handler  # the fixture: notify's EventHandler on SQLite and PostgreSQL

ROLES = ("a", "b", "c", "d", "e", "master", "follower")


def registered(tid, *, anonymous=False, language="id", channel="web"):
    return events.new("reporter.registered", tid, events_pb2.ReporterRegistered(
        tracking_id=tid, name="Rina Marlina", email=f"{tid.lower()}@contoh.id",
        phone="081234567890", language=language, anonymous=anonymous, channel=channel),
        "intake")


def linked(follower, master):
    return events.new("ticket.linked", follower, events_pb2.TicketLinked(
        tracking_id=follower, master_tracking_id=master, similarity=0.93, ticket_version=2,
        actor_role="system", master_state=common_pb2.TICKET_STATE_DISPATCHED,
        master_agency=AGENCY, master_deadline_zone="WIB"), "routing")


def story(t: dict[str, str]) -> list:
    """Events of seven reports, in the order they might reach notify."""
    first_a = dispatched(t["a"], version=1)
    return [
        # Registered anonymous on WhatsApp; routing's event does not say anonymous: the agency
        # still never gets the name, and the notice goes to WhatsApp.
        registered(t["e"], anonymous=True, channel="whatsapp"), dispatched(t["e"], version=1),
        registered(t["a"]), first_a,
        # The ticket before its contact: the reporter's notice waits, then is woken.
        dispatched(t["b"], version=1), registered(t["b"], channel="sms"),
        # A parent's escalation comes as two events of one change: one email between them.
        registered(t["c"]), dispatched(t["c"], version=7, agency=PARENT),
        escalated(t["c"], "parent", version=7),
        registered(t["d"], anonymous=True, language="en"),
        dispatched(t["d"], version=1, anonymous=True),
        # The follower, linked, hears of the master's next step about its own report.
        registered(t["master"]), registered(t["follower"], language="en"),
        dispatched(t["master"], version=1), linked(t["follower"], t["master"]),
        changed(t["master"], "follow_up", DISP, FUP, version=3,
                public_note="Perbaikan dijadwalkan"),
        # A redelivery of an event already handled.
        first_a,
    ]


def written(handler, t: dict[str, str]) -> list[tuple]:
    """Every delivery of the story's reports, its tracking ids replaced by their roles and
    what differs from run to run (ids, times) left out."""
    role = {tid: name for name, tid in t.items()}
    d = store.deliveries
    with handler.engine.connect() as conn:
        rows = conn.execute(sa.select(d).where(d.c.tracking_id.in_(list(t.values())))).all()
        contacts = conn.execute(sa.select(store.contacts.c.tracking_id, store.contacts.c.channel)
                                .where(store.contacts.c.tracking_id.in_(list(t.values()))))
        contacts = sorted((role[tid], channel) for tid, channel in contacts)
    out = []
    for r in rows:
        payload = r.payload
        for tid, name in role.items():
            payload = payload.replace(tid, name).replace(tid[4:], name)
        payload = json.loads(payload)
        for key in ("delivery_id", "event_id", "occurred_at"):
            payload.pop(key, None)
        out.append((role[r.tracking_id], r.channel, r.audience, r.target, r.trigger_type,
                    r.status, r.attempts, json.dumps(payload, sort_keys=True)))
    return [*sorted(out), ("contacts", tuple(contacts))]


def in_batches(handler, envelopes, size: int) -> list[str]:
    outcomes = []
    for start in range(0, len(envelopes), size):
        chunk = envelopes[start:start + size]
        with db.batch(handler.engine):
            handler.prepare(chunk)
            outcomes.extend(handler(envelope) for envelope in chunk)
    return outcomes


@pytest.mark.parametrize("size", [3, 64])
def test_a_batch_writes_what_its_events_one_by_one_write(handler, size):
    alone = {name: new_tracking_id() for name in ROLES}
    outcomes = [handler(envelope) for envelope in story(alone)]
    together = {name: new_tracking_id() for name in ROLES}
    events_together = story(together)
    # The redelivery also inside the batch that holds the event itself.
    events_together.insert(4, events_together[3])
    batched = in_batches(handler, events_together, size)

    assert outcomes.count("duplicate") == 1
    assert batched.count("duplicate") == 2
    expected = written(handler, alone)
    assert written(handler, together) == expected
    # What the comparison rests on: each reporter told once of each step, the follower of
    # the master's step, one email for the parent's escalation, the agency of each ticket.
    emails = [(who, json.loads(payload)["template"]) for who, channel, audience, *_x, payload
              in expected[:-1] if audience == "reporter"]
    assert sorted(emails) == sorted([
        ("a", "dispatched"), ("b", "dispatched"), ("c", "dispatched"), ("d", "dispatched"),
        ("e", "dispatched"),
        ("master", "dispatched"), ("master", "followed_up"), ("follower", "linked"),
        ("follower", "following")])
    assert ("b", "sms") in expected[-1][1]
    hooks_e = [payload for who, channel, audience, *_x, payload in expected[:-1]
               if who == "e" and audience == "agency"]
    assert len(hooks_e) == 1 and NAME not in hooks_e[0]
    assert [channel for who, channel, audience, *_x in expected[:-1]
            if who == "e" and audience == "reporter"] == ["whatsapp"]


def _statements(engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _conn, _cursor, statement, *_rest: seen.append(statement))
    return seen


def test_a_batch_of_tickets_reads_ahead_instead_of_per_event(handler):
    """Eight tickets whose reporters are known, dispatched in one batch: four statements in
    all (new events, contacts, followers, the deliveries), where one by one each event took
    four of its own (on PostgreSQL a round trip each)."""
    tids = [new_tracking_id() for _ in range(8)]
    for tid in tids:
        handler(registered(tid))
    batch = [dispatched(tid, version=1) for tid in tids]
    seen = _statements(handler.engine)
    with db.batch(handler.engine):
        handler.prepare(batch)
        assert [handler(envelope) for envelope in batch] == ["processed"] * 8
    assert len(seen) == 4, seen

    del seen[:]
    handler(dispatched(new_tracking_id(), version=1))
    assert len(seen) == 4, "one event alone: dedupe, contact, followers, deliveries"
    with handler.engine.connect() as conn:
        made = conn.execute(sa.select(sa.func.count()).select_from(store.deliveries).where(
            store.deliveries.c.tracking_id.in_(tids))).scalar()
    assert made == 16  # each ticket's webhook and its reporter's email


def test_a_batch_of_reporters_is_saved_and_woken_in_two_statements(handler):
    """Eight tickets dispatched before their reporters were known, each reporter's notice
    already looked at by a worker and left waiting; then the eight reporter.registered in
    one batch: the contacts are saved and the waiting notices woken in two statements for
    the batch (one by one, two for each event), the woken count handed to the sending
    threads once the batch has committed, not before."""
    tids = [new_tracking_id() for _ in range(8)]
    for tid in tids:
        handler(dispatched(tid, version=1))
    d = store.deliveries
    later = db.utcnow().replace(year=2099)
    with handler.engine.begin() as conn:
        conn.execute(d.update().where(d.c.tracking_id.in_(tids), d.c.audience == "reporter")
                     .values(last_error=WAITING_FOR_CONTACT, next_attempt_at=later))
    def contacts_seen_by_a_worker() -> int:
        with handler.engine.connect() as other:
            return other.execute(sa.select(sa.func.count()).select_from(store.contacts).where(
                store.contacts.c.tracking_id.in_(tids))).scalar()

    woken: list[tuple[int, int, int]] = []
    batch = [registered(tid, channel="sms" if i % 2 else "web") for i, tid in enumerate(tids)]
    seen = _statements(handler.engine)
    handler.on_new_deliveries = lambda count: woken.append(
        (count, len(seen), contacts_seen_by_a_worker()))
    try:
        with db.batch(handler.engine):
            handler.prepare(batch)
            assert [handler(envelope) for envelope in batch] == ["processed"] * 8
            assert woken == []
    finally:
        handler.on_new_deliveries = lambda _count: None
    # Woken once, after the commit: new events, contacts, followers (the read-ahead), the
    # contacts, the wake, and the batch's contacts visible to another connection.
    assert woken == [(8, 5, 8)], seen
    with handler.engine.connect() as conn:
        due = conn.execute(sa.select(d.c.tracking_id, d.c.next_attempt_at).where(
            d.c.tracking_id.in_(tids), d.c.audience == "reporter")).all()
        saved = dict(conn.execute(sa.select(store.contacts.c.tracking_id,
                                            store.contacts.c.channel)
                                  .where(store.contacts.c.tracking_id.in_(tids))).all())
    assert sorted(t for t, _ in due) == sorted(tids)
    assert all(db.as_utc(at) < later for _, at in due)
    assert saved == {tid: "sms" if i % 2 else "web" for i, tid in enumerate(tids)}


def test_a_reporter_registered_twice_in_a_batch_keeps_the_later_contact(handler):
    """Two reporter.registered of one ticket in a batch (a reporter's details corrected):
    the later one is stored, as one by one, and the batch does not trip over its own
    repeat (PostgreSQL refuses to update one row twice in one statement)."""
    tid = new_tracking_id()
    first = registered(tid, channel="web")
    second = registered(tid, channel="whatsapp", language="en")
    with db.batch(handler.engine):
        handler.prepare([first, second])
        assert [handler(first), handler(second)] == ["processed", "processed"]
    with handler.engine.connect() as conn:
        row = conn.execute(sa.select(store.contacts).where(
            store.contacts.c.tracking_id == tid)).one()
    assert (row.channel, row.language) == ("whatsapp", "en")


def test_a_batch_whose_deliveries_fail_to_insert_fails_whole(handler):
    """The deliveries go in just before the batch commits; if that insert fails the batch
    fails like a handler's error (the consumer then takes its events one by one), and
    nothing of it stays: not the events marked handled, not the contacts."""
    tid = new_tracking_id()
    batch = [registered(tid), dispatched(tid, version=1)]

    def refuse(conn):
        raise sa.exc.OperationalError("INSERT", {}, RuntimeError("disk full"))

    with pytest.raises(sa.exc.OperationalError):
        with db.batch(handler.engine):
            handler.prepare(batch)
            for envelope in batch:
                handler(envelope)
            with db.begin(handler.engine) as conn:
                db.before_commit(conn, refuse)
    with handler.engine.connect() as conn:
        assert conn.execute(sa.select(store.deliveries).where(
            store.deliveries.c.tracking_id == tid)).all() == []
        assert conn.execute(sa.select(store.contacts).where(
            store.contacts.c.tracking_id == tid)).all() == []
    # Handled again, one by one, as the consumer does: the events are new, written once.
    assert [handler(envelope) for envelope in batch] == ["processed", "processed"]
    assert [handler(envelope) for envelope in batch] == ["duplicate", "duplicate"]


def test_first_deliveries_records_each_new_event_once(database_url):
    engine = db.make_engine(database_url)
    try:
        db.migrate(engine, "notify", store.MIGRATIONS)
        with db.begin(engine) as conn:
            assert db.first_deliveries(conn, "t", ["e1", "e2", "e3"]) == {"e1", "e2", "e3"}
            # Already recorded, given twice, new: each new one once.
            assert db.first_deliveries(conn, "t", ["e1", "e4", "e4", "e5", "e6"]) == {
                "e4", "e5", "e6"}
            assert db.first_deliveries(conn, "other", ["e1"]) == {"e1"}
            assert db.first_deliveries(conn, "t", []) == set()
            assert not db.first_delivery(conn, "t", "e6")
            assert db.first_delivery(conn, "t", "e7")
    finally:
        engine.dispose()
