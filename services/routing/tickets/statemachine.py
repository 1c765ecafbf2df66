"""The ticket lifecycle as a table (DESIGN §2): which action may move a ticket from which state
to which, who may take it, and which clock runs afterwards. Plain Python, no I/O: commands
look up a `Step` here and refuse anything the table does not hold.

States: SUBMITTED (triage: waiting for verification), ON_HOLD (waiting for the reporter; the
clock is paused), DISPATCHED (with an agency), FOLLOWED_UP (the agency answered; the reporter
may reply), REPORTER_REPLIED (back with the agency), CLOSED, ARCHIVED.

Pelimpahan (hand-over): when an agency says *bukan wewenang* (not our authority), the ticket
goes to the next candidate agency, or back to triage, keeping the chain of agencies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    SUBMITTED = "SUBMITTED"
    ON_HOLD = "ON_HOLD"
    DISPATCHED = "DISPATCHED"
    FOLLOWED_UP = "FOLLOWED_UP"
    REPORTER_REPLIED = "REPORTER_REPLIED"
    CLOSED = "CLOSED"
    ARCHIVED = "ARCHIVED"


class Role(StrEnum):
    NATIONAL_ADMIN = "national_admin"
    AGENCY_ADMIN = "agency_admin"
    AGENCY_OFFICER = "agency_officer"
    OVERSIGHT = "oversight"       # Ombudsman: reads everything, changes nothing
    SERVICE = "service"           # intake (for citizens), an agency's own system
    CITIZEN = "citizen"           # the reporter, holding the report's access token
    SYSTEM = "system"             # routing itself: clocks, auto-close, escalation


class Action(StrEnum):
    VERIFY = "verify"                    # national admin: verify and dispatch
    HOLD = "hold"                        # national admin: ask the reporter a question
    ARCHIVE = "archive"                  # national admin: with a reason from ARCHIVE_REASONS
    ADD_INFO = "add_info"                # reporter answers a held report
    ACCEPT = "accept"                    # agency: takes the ticket, declares its complexity
    FORWARD = "forward"                  # agency: to one of its own units
    NOT_OUR_AUTHORITY = "not_our_authority"  # agency: bukan wewenang, with a reason
    FOLLOW_UP = "follow_up"              # agency: the response (tindak lanjut)
    REPLY = "reply"                      # reporter: replies to a follow-up
    CLOSE = "close"                      # agency or national admin, after the reporter agreed
    CONFIRM = "confirm"                  # reporter: satisfied with the follow-up
    AUTO_CLOSE = "auto_close"            # system: no reply within the auto-close clock
    APPEAL = "appeal"                    # reporter: reopens a closed ticket at the parent
    ESCALATE = "escalate"                # system: a deadline passed


class Clock(StrEnum):
    """What the deadline after a step measures."""

    VERIFY = "verify"          # national admin verifies within 3 working days
    RESPOND = "respond"        # agency follows up within its complexity's working days
    AUTO_CLOSE = "auto_close"  # closes itself 10 working days after a follow-up
    PAUSED = "paused"          # on hold: what was left is kept, not counted
    NONE = "none"              # closed, archived


class Complexity(StrEnum):
    """Declared by the agency; sets its follow-up clock (working days)."""

    SIMPLE = "SIMPLE"           # 5
    DISPUTE = "DISPUTE"         # 14: needs coordination or a dispute settled
    FIELD = "FIELD"             # 60: needs a field inspection


COMPLEXITY_DAYS = {Complexity.SIMPLE: 5, Complexity.DISPUTE: 14, Complexity.FIELD: 60}
VERIFY_DAYS = 3
AUTO_CLOSE_DAYS = 10
APPEAL_DAYS = 10            # a closure may be appealed within this many working days
UNRESOLVED_DAYS = 60        # calendar days before a ticket is flagged for oversight

# Fixed reasons for archiving (the national admin picks one; free text goes in the note).
ARCHIVE_REASONS = {
    "SPAM": "Spam atau iklan",
    "DUPLICATE": "Duplikat laporan lain",
    "NOT_PUBLIC_SERVICE": "Bukan pelayanan publik",
    "UNCLEAR": "Tidak jelas dan pelapor tidak melengkapi",
    "ABUSIVE": "Mengandung ujaran kebencian atau kekerasan",
    "WITHDRAWN": "Dicabut oleh pelapor",
}

STAFF = frozenset({Role.AGENCY_ADMIN, Role.AGENCY_OFFICER})
NATIONAL = frozenset({Role.NATIONAL_ADMIN})
REPORTER = frozenset({Role.CITIZEN})
SYSTEM = frozenset({Role.SYSTEM})
ACTIVE = frozenset({State.SUBMITTED, State.ON_HOLD, State.DISPATCHED, State.FOLLOWED_UP,
                    State.REPORTER_REPLIED})


@dataclass(frozen=True)
class Step:
    action: Action
    source: State
    target: State
    roles: frozenset[Role]
    clock: Clock


def _steps(action: Action, sources, target: State | None, roles, clock: Clock) -> list[Step]:
    return [Step(action, s, s if target is None else target, frozenset(roles), clock)
            for s in sources]


# target None: the state stays (the step still changes the ticket and bumps its version).
TABLE: list[Step] = [
    *_steps(Action.VERIFY, [State.SUBMITTED], State.DISPATCHED, NATIONAL, Clock.RESPOND),
    *_steps(Action.HOLD, [State.SUBMITTED], State.ON_HOLD, NATIONAL, Clock.PAUSED),
    *_steps(Action.ARCHIVE, [State.SUBMITTED, State.ON_HOLD], State.ARCHIVED, NATIONAL,
            Clock.NONE),
    *_steps(Action.ADD_INFO, [State.ON_HOLD], State.SUBMITTED, REPORTER, Clock.VERIFY),
    *_steps(Action.ACCEPT, [State.DISPATCHED], None, STAFF, Clock.RESPOND),
    *_steps(Action.FORWARD, [State.DISPATCHED, State.REPORTER_REPLIED], None,
            {Role.AGENCY_ADMIN}, Clock.RESPOND),
    # Hand-over to the next candidate; the command decides between DISPATCHED (another
    # agency) and SUBMITTED (no candidate left: triage).
    *_steps(Action.NOT_OUR_AUTHORITY, [State.DISPATCHED, State.REPORTER_REPLIED],
            State.DISPATCHED, STAFF, Clock.RESPOND),
    *_steps(Action.NOT_OUR_AUTHORITY, [State.DISPATCHED, State.REPORTER_REPLIED],
            State.SUBMITTED, STAFF, Clock.VERIFY),
    *_steps(Action.FOLLOW_UP, [State.DISPATCHED, State.REPORTER_REPLIED], State.FOLLOWED_UP,
            STAFF, Clock.AUTO_CLOSE),
    *_steps(Action.REPLY, [State.FOLLOWED_UP], State.REPORTER_REPLIED, REPORTER,
            Clock.RESPOND),
    *_steps(Action.CLOSE, [State.FOLLOWED_UP], State.CLOSED,
            STAFF | NATIONAL, Clock.NONE),
    *_steps(Action.CONFIRM, [State.FOLLOWED_UP], State.CLOSED, REPORTER, Clock.NONE),
    *_steps(Action.AUTO_CLOSE, [State.FOLLOWED_UP], State.CLOSED, SYSTEM, Clock.NONE),
    *_steps(Action.APPEAL, [State.CLOSED], State.DISPATCHED, REPORTER, Clock.RESPOND),
    # An agency without a parent: the appeal goes to the national admin's triage queue.
    *_steps(Action.APPEAL, [State.CLOSED], State.SUBMITTED, REPORTER, Clock.VERIFY),
    # Escalation moves a ticket to the parent agency and restarts the clock there, or, with
    # no parent left, back to the national admin's triage queue; an overdue verification
    # stays in triage with a new reminder.
    *_steps(Action.ESCALATE, [State.DISPATCHED, State.REPORTER_REPLIED], None, SYSTEM,
            Clock.RESPOND),
    *_steps(Action.ESCALATE, [State.DISPATCHED, State.REPORTER_REPLIED], State.SUBMITTED,
            SYSTEM, Clock.VERIFY),
    *_steps(Action.ESCALATE, [State.SUBMITTED], None, SYSTEM, Clock.VERIFY),
]

_BY_KEY: dict[tuple[Action, State], list[Step]] = {}
for _step in TABLE:
    _BY_KEY.setdefault((_step.action, _step.source), []).append(_step)


class NotAllowed(Exception):
    """The action cannot be taken in the ticket's state (HTTP 409 / FAILED_PRECONDITION)."""

    def __init__(self, action: Action, state: State):
        self.action, self.state = action, state
        allowed = sorted({s.source.value for s in TABLE if s.action == action})
        super().__init__(f"cannot {action.value.replace('_', ' ')} a ticket that is {state.value}"
                         f"; possible only when it is {' or '.join(allowed)}")


class Forbidden(Exception):
    """The role may never take this action (PERMISSION_DENIED)."""

    def __init__(self, action: Action, role: Role):
        self.action, self.role = action, role
        super().__init__(f"{role.value} may not {action.value.replace('_', ' ')}")


def step(action: Action, state: State, role: Role, target: State | None = None) -> Step:
    """The step for `action` from `state`, checked for `role`; `target` picks among steps
    with several outcomes (not-our-authority). Raises Forbidden or NotAllowed."""
    if role not in roles_for(action):
        raise Forbidden(action, role)
    candidates = _BY_KEY.get((action, state), [])
    if target is not None:
        candidates = [s for s in candidates if s.target == target]
    if not candidates:
        raise NotAllowed(action, state)
    return candidates[0]


def roles_for(action: Action) -> frozenset[Role]:
    return frozenset().union(*(s.roles for s in TABLE if s.action == action))


def allowed_actions(state: State, role: Role) -> list[Action]:
    """What `role` may do with a ticket in `state` (for views: which buttons to show)."""
    return sorted({s.action for s in TABLE if s.source == state and role in s.roles})
