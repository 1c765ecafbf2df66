"""Who is calling routing, and what each role may call (docs/authorization.md is this table in
words; a test asserts every cell over gRPC and HTTP).

Roles (DESIGN §2): national admin, agency admin and officer (their agency's tickets only),
oversight (the Ombudsman: reads everything, changes nothing), and service accounts: a
platform service without an agency (intake, acting for citizens who hold a report's access
token) or an agency's own system (acting as that agency's officer)."""

from __future__ import annotations

from dataclasses import dataclass

from services.routing.tickets.statemachine import Role

# The roles an account may have; CITIZEN and SYSTEM are what routing acts as, never accounts.
ACCOUNT_ROLES = (Role.NATIONAL_ADMIN, Role.AGENCY_ADMIN, Role.AGENCY_OFFICER, Role.OVERSIGHT,
                 Role.SERVICE)
# Roles that belong to exactly one agency.
AGENCY_ROLES = frozenset({Role.AGENCY_ADMIN, Role.AGENCY_OFFICER})


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    agency_code: str = ""      # staff and agency systems; "" for national roles and intake
    display_name: str = ""

    @property
    def is_platform_service(self) -> bool:
        """Intake and the like: may act only for citizens (the report's token holder)."""
        return self.role == Role.SERVICE and not self.agency_code

    @property
    def acting_role(self) -> Role:
        """The role the ticket lifecycle sees: an agency's system acts as its officer, a
        platform service as the citizen it calls for."""
        if self.role == Role.SERVICE:
            return Role.AGENCY_OFFICER if self.agency_code else Role.CITIZEN
        return self.role

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.NATIONAL_ADMIN, Role.OVERSIGHT)


# RPC method -> the kinds of caller allowed to call it at all. The ticket-level check (is it
# the caller's agency's?) and the lifecycle's own role check come after this one.
ANYONE = "anyone authenticated"
STAFF_VIEW = "national admin, oversight, the agency's staff and systems"
NATIONAL = "national admin"
AUDIT = "national admin, oversight"
AGENCY = "the agency's staff and systems"
AGENCY_ADMIN = "the agency's admin"
CLOSERS = "the agency's staff and systems, national admin"
CITIZEN_SIDE = "platform service (for the report's token holder)"

METHODS: dict[str, str] = {
    "SuggestRoute": ANYONE,
    "GetAgency": ANYONE,
    "ListAgencies": ANYONE,
    "ListCategories": ANYONE,
    "WhoAmI": ANYONE,
    "ListTickets": STAFF_VIEW,
    "GetTicket": STAFF_VIEW,
    "GetAuditTrail": AUDIT,
    "VerifyTicket": NATIONAL,
    "HoldTicket": NATIONAL,
    "ArchiveTicket": NATIONAL,
    "LinkDuplicate": NATIONAL,
    "DismissDuplicate": NATIONAL,
    "AcceptTicket": AGENCY,
    "ForwardTicket": AGENCY_ADMIN,
    "DeclineTicket": AGENCY,
    "FollowUpTicket": AGENCY,
    "CloseTicket": CLOSERS,
    "MessageReporter": CLOSERS,
    "ReporterReply": CITIZEN_SIDE,
    "ReporterConfirm": CITIZEN_SIDE,
    "RateTicket": CITIZEN_SIDE,
    "AppealTicket": CITIZEN_SIDE,
}


def allowed(kind: str, principal: Principal) -> bool:
    """Whether `principal` belongs to the kind of caller a method allows."""
    role, agency_system = principal.role, principal.role == Role.SERVICE and principal.agency_code
    if kind == ANYONE:
        return True
    if kind == STAFF_VIEW:
        return principal.sees_everything or role in AGENCY_ROLES or bool(agency_system)
    if kind == NATIONAL:
        return role == Role.NATIONAL_ADMIN
    if kind == AUDIT:
        return principal.sees_everything
    if kind == AGENCY:
        return role in AGENCY_ROLES or bool(agency_system)
    if kind == AGENCY_ADMIN:
        return role == Role.AGENCY_ADMIN
    if kind == CLOSERS:
        return role in AGENCY_ROLES or bool(agency_system) or role == Role.NATIONAL_ADMIN
    if kind == CITIZEN_SIDE:
        return principal.is_platform_service
    raise ValueError(f"unknown caller kind {kind!r}")


def may_call(method: str, principal: Principal) -> bool:
    kind = METHODS.get(method)
    return kind is not None and allowed(kind, principal)
