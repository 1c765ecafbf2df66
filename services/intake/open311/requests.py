"""Open311 service requests read from intake's read model. Each one is built from the public
view of the report (reports.public_view), never from the row, so Open311 shows what the
public view shows and nothing more: confidential reports are neither listed nor readable,
and no reporter detail or exact location ever appears (the region does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.intake import reports, storage

OPEN_STATES = ("SUBMITTED", "ON_HOLD", "DISPATCHED", "FOLLOWED_UP", "REPORTER_REPLIED")
CLOSED_STATES = ("CLOSED", "ARCHIVED")
DEFAULT_DAYS = 90          # the spec's default window when no date is given
MAX_RESULTS = 1000         # the spec's default cap
MAX_IDS = 100              # service_request_id values per call


def _reports_query():
    """Reports with their master's status (as reports.load reads them), public ones only."""
    return reports.with_master().where(storage.reports.c.confidential.is_(False))


def find(conn: Connection, *, ids: list[str] | None = None, codes: list[str] | None = None,
         start: datetime | None = None, end: datetime | None = None,
         statuses: list[str] | None = None) -> list:
    """The public reports matching the spec's filters, newest first. With `ids` the others
    are ignored (as the spec says); without dates, the last DEFAULT_DAYS."""
    r = storage.reports
    query = _reports_query()
    if ids:
        query = query.where(r.c.tracking_id.in_(ids))
    else:
        if start is None and end is None:
            start = datetime.now(UTC) - timedelta(days=DEFAULT_DAYS)
        if start is not None:
            query = query.where(r.c.created_at >= start)
        if end is not None:
            query = query.where(r.c.created_at <= end)
        if codes:
            query = query.where(r.c.category.in_(codes))
        if statuses and set(statuses) != {"open", "closed"}:
            states = OPEN_STATES if statuses == ["open"] else CLOSED_STATES
            query = query.where(r.c.status.in_(states))
    return conn.execute(query.order_by(r.c.created_at.desc(), r.c.tracking_id)
                        .limit(MAX_RESULTS)).all()


def one(conn: Connection, tracking_id: str):
    """The public report, or None (no such report, or a confidential one)."""
    return conn.execute(_reports_query().where(
        storage.reports.c.tracking_id == tracking_id)).first()


def routed(conn: Connection, tracking_id: str) -> bool:
    """Whether routing has taken the report: the read model applied one of its events (a
    ticket version, an agency, or a state other than the one intake set)."""
    r = storage.reports
    row = conn.execute(sa.select(r.c.version, r.c.agency_code, r.c.status).where(
        r.c.tracking_id == tracking_id)).first()
    return row is not None and (row.version > 0 or bool(row.agency_code)
                                or row.status != "SUBMITTED")


def item(row, region_names: dict[str, str], service_names: dict[str, str]) -> dict:
    """One `<request>` of GET requests, in the spec's order, from the public view only."""
    view = reports.public_view(row, [])
    status = "open" if view["status"] in OPEN_STATES and not view["linked_to"] else "closed"
    code = view["category"]
    return {
        "service_request_id": view["tracking_id"],
        "status": status,
        "status_notes": view["status_label"],
        "service_name": service_names.get(code, code) if code else None,
        "service_code": code,
        "description": view.get("body"),
        "agency_responsible": view["agency"]["name"] if view["agency"] else None,
        "service_notice": None,
        "requested_datetime": view["created_at"],
        "updated_datetime": view["updated_at"],
        "expected_datetime": view["deadline"],
        # The public view gives the region, never the reporter's point or street.
        "address": region_names.get(view["region_code"]),
        "address_id": view["region_code"],
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def region_names(conn: Connection, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    rg = storage.regions
    return {r.code: r.name.strip() for r in conn.execute(
        sa.select(rg.c.code, rg.c.name).where(rg.c.code.in_(sorted(codes))))}
