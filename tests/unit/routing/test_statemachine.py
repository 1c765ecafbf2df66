"""The ticket lifecycle table: every allowed transition, and every forbidden one refused with
a message naming the ticket's state. The expected table is written out here by hand (from
DESIGN §2), so a change to the code's table that nobody meant fails."""

from __future__ import annotations

import itertools

import pytest

from services.routing.tickets.statemachine import (
    TABLE,
    Action,
    Clock,
    Forbidden,
    NotAllowed,
    Role,
    State,
    allowed_actions,
    roles_for,
    step,
)

S, A, R = State, Action, Role
STAFF = {R.AGENCY_ADMIN, R.AGENCY_OFFICER}

# (action, from) -> {to: clock}, and who may take the action at all.
EXPECTED: dict[tuple[Action, State], dict[State, Clock]] = {
    (A.VERIFY, S.SUBMITTED): {S.DISPATCHED: Clock.RESPOND},
    (A.HOLD, S.SUBMITTED): {S.ON_HOLD: Clock.PAUSED},
    (A.ARCHIVE, S.SUBMITTED): {S.ARCHIVED: Clock.NONE},
    (A.ARCHIVE, S.ON_HOLD): {S.ARCHIVED: Clock.NONE},
    (A.ADD_INFO, S.ON_HOLD): {S.SUBMITTED: Clock.VERIFY},
    (A.ACCEPT, S.DISPATCHED): {S.DISPATCHED: Clock.RESPOND},
    (A.FORWARD, S.DISPATCHED): {S.DISPATCHED: Clock.RESPOND},
    (A.FORWARD, S.REPORTER_REPLIED): {S.REPORTER_REPLIED: Clock.RESPOND},
    (A.NOT_OUR_AUTHORITY, S.DISPATCHED): {S.DISPATCHED: Clock.RESPOND,
                                          S.SUBMITTED: Clock.VERIFY},
    (A.NOT_OUR_AUTHORITY, S.REPORTER_REPLIED): {S.DISPATCHED: Clock.RESPOND,
                                                S.SUBMITTED: Clock.VERIFY},
    (A.FOLLOW_UP, S.DISPATCHED): {S.FOLLOWED_UP: Clock.AUTO_CLOSE},
    (A.FOLLOW_UP, S.REPORTER_REPLIED): {S.FOLLOWED_UP: Clock.AUTO_CLOSE},
    (A.REPLY, S.FOLLOWED_UP): {S.REPORTER_REPLIED: Clock.RESPOND},
    (A.CLOSE, S.FOLLOWED_UP): {S.CLOSED: Clock.NONE},
    (A.CONFIRM, S.FOLLOWED_UP): {S.CLOSED: Clock.NONE},
    (A.AUTO_CLOSE, S.FOLLOWED_UP): {S.CLOSED: Clock.NONE},
    (A.APPEAL, S.CLOSED): {S.DISPATCHED: Clock.RESPOND, S.SUBMITTED: Clock.VERIFY},
    (A.ESCALATE, S.DISPATCHED): {S.DISPATCHED: Clock.RESPOND, S.SUBMITTED: Clock.VERIFY},
    (A.ESCALATE, S.REPORTER_REPLIED): {S.REPORTER_REPLIED: Clock.RESPOND,
                                       S.SUBMITTED: Clock.VERIFY},
    (A.ESCALATE, S.SUBMITTED): {S.SUBMITTED: Clock.VERIFY},
}
WHO: dict[Action, set[Role]] = {
    A.VERIFY: {R.NATIONAL_ADMIN}, A.HOLD: {R.NATIONAL_ADMIN}, A.ARCHIVE: {R.NATIONAL_ADMIN},
    A.ADD_INFO: {R.CITIZEN}, A.ACCEPT: STAFF, A.FORWARD: {R.AGENCY_ADMIN},
    A.NOT_OUR_AUTHORITY: STAFF, A.FOLLOW_UP: STAFF, A.REPLY: {R.CITIZEN},
    A.CLOSE: STAFF | {R.NATIONAL_ADMIN}, A.CONFIRM: {R.CITIZEN}, A.AUTO_CLOSE: {R.SYSTEM},
    A.APPEAL: {R.CITIZEN}, A.ESCALATE: {R.SYSTEM},
}


def test_the_table_is_exactly_the_designed_lifecycle():
    found: dict[tuple[Action, State], dict[State, Clock]] = {}
    for s in TABLE:
        found.setdefault((s.action, s.source), {})[s.target] = s.clock
    assert found == EXPECTED
    assert {a: set(roles_for(a)) for a in Action} == WHO


@pytest.mark.parametrize("action, source, target", [
    (a, s, t) for (a, s), targets in EXPECTED.items() for t in targets])
def test_every_allowed_transition_is_taken_by_the_right_roles(action, source, target):
    for role in Role:
        if role in WHO[action]:
            taken = step(action, source, role, target)
            assert (taken.source, taken.target, taken.clock) == (
                source, target, EXPECTED[(action, source)][target])
        else:
            with pytest.raises(Forbidden, match=role.value):
                step(action, source, role, target)


@pytest.mark.parametrize("action, source", [
    (a, s) for a, s in itertools.product(Action, State) if (a, s) not in EXPECTED])
def test_every_forbidden_transition_names_the_current_state(action, source):
    role = next(iter(WHO[action]))
    with pytest.raises(NotAllowed) as refused:
        step(action, source, role)
    message = str(refused.value)
    assert f"a ticket that is {source.value}" in message
    allowed_from = {s for (a, s) in EXPECTED if a == action}
    assert all(s.value in message for s in allowed_from), "it says when it would be possible"


def test_closed_and_archived_tickets_allow_only_the_reporters_appeal():
    assert allowed_actions(S.ARCHIVED, R.NATIONAL_ADMIN) == []
    assert allowed_actions(S.CLOSED, R.AGENCY_OFFICER) == []
    assert allowed_actions(S.CLOSED, R.CITIZEN) == [A.APPEAL]


def test_what_each_role_may_do_with_a_dispatched_ticket():
    assert allowed_actions(S.DISPATCHED, R.AGENCY_ADMIN) == sorted(
        [A.ACCEPT, A.FORWARD, A.NOT_OUR_AUTHORITY, A.FOLLOW_UP])
    assert allowed_actions(S.DISPATCHED, R.AGENCY_OFFICER) == sorted(
        [A.ACCEPT, A.NOT_OUR_AUTHORITY, A.FOLLOW_UP])
    assert allowed_actions(S.DISPATCHED, R.OVERSIGHT) == []
    assert allowed_actions(S.DISPATCHED, R.NATIONAL_ADMIN) == []
