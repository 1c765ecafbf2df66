"""Corrections as labelled examples: rows of routing's `corrections` table (an admin
recategorising in triage, a ticket re-dispatched after "not our authority")."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.routing.classify.corpus import Example, category_of

log = logging.getLogger(__name__)

_CODE = re.compile(r"[A-Z0-9_]+(\.[A-Z0-9_]+)?")


def label(category: str, subcategory: str) -> str | None:
    """The label a correction teaches: its subcategory when it belongs to the category,
    else the bare category code; None when the category is not a code at all."""
    category, subcategory = category.strip(), subcategory.strip()
    if not _CODE.fullmatch(category) or "." in category:
        return None
    if subcategory and _CODE.fullmatch(subcategory) and category_of(subcategory) == category:
        return subcategory
    return category


def read(engine: Engine) -> list[Example]:
    """Every usable correction, oldest first. A row naming no valid category code is
    skipped with a warning carrying its id (never its text); so is one whose category the
    directory has deactivated (a temporary category whose period is over), so that the
    model stops suggesting it at the next retrain."""
    from services.routing.storage import categories, corrections

    examples = []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(corrections.c.id, corrections.c.title,
                                      corrections.c.body, corrections.c.category,
                                      corrections.c.subcategory)
                            .order_by(corrections.c.id)).all()
        inactive = set(conn.execute(sa.select(categories.c.code)
                                    .where(categories.c.active.is_(False))).scalars())
    for row in rows:
        if row.category in inactive:
            continue
        taught = label(row.category, row.subcategory)
        if taught is None or not (row.title or "").strip() and not (row.body or "").strip():
            log.warning("correction skipped: no category code or no text",
                        extra={"correction_id": row.id})
            continue
        examples.append(Example(row.title or "", row.body or "", taught,
                                source="correction"))
    return examples


def read_if_present(url: str) -> list[Example]:
    """The corrections in routing's database at `url`; none when that database does not
    exist yet or has no corrections table (a fresh checkout), without creating anything."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            return []
    from services.infra import db

    engine = db.make_engine(url, pool_size=1)
    try:
        if not sa.inspect(engine).has_table("corrections"):
            return []
        return read(engine)
    finally:
        engine.dispose()
