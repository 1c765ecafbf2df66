"""Open311 services: the directory's categories, asked of routing (ListCategories) and kept
for a few minutes, so `services` keeps answering for a while when routing is down; the
subcategories and the report kinds are each service's attributes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.intake.models import KINDS

log = logging.getLogger(__name__)

FRESH_SECONDS = 300.0      # asked of routing again after this
STALE_SECONDS = 3600.0     # served while routing does not answer, at most this old
RETRY_SECONDS = 5.0        # after a failed ask, routing is left alone this long

KIND_NAMES = {"PENGADUAN": "Pengaduan (complaint)", "ASPIRASI": "Aspirasi (aspiration)",
              "PERMINTAAN_INFORMASI": "Permintaan informasi (information request)"}
YES_NO = [{"key": "false", "name": "Tidak (no)"}, {"key": "true", "name": "Ya (yes)"}]


class CatalogUnavailable(Exception):
    """Routing never answered (or not for longer than STALE_SECONDS)."""


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    subcategories: tuple[tuple[str, str], ...]   # (code, name)


class Catalog:
    """The categories as last fetched by `fetch` (a callable answering ListCategories)."""

    def __init__(self, fresh: float = FRESH_SECONDS, stale: float = STALE_SECONDS,
                 retry: float = RETRY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.fresh, self.stale, self.retry, self.clock = fresh, stale, retry, clock
        self._services: dict[str, Service] | None = None
        self._fetched = 0.0
        self._next_try = 0.0
        self._lock = threading.Lock()

    def services(self, fetch: Callable[[], object]) -> dict[str, Service]:
        now = self.clock()
        with self._lock:
            due = self._services is None or now - self._fetched >= self.fresh
            if due and now >= self._next_try:
                try:
                    answer = fetch()
                except Exception as exc:  # noqa: BLE001 - any failure: serve what we have
                    log.warning("routing did not list the categories (%s)",
                                type(exc).__name__)
                    self._next_try = now + self.retry
                else:
                    self._services = {c.code: Service(c.code, c.name, tuple(
                        (s.code, s.name) for s in c.subcategories)) for c in answer.categories}
                    self._fetched = now
            if self._services is None or now - self._fetched > self.stale:
                raise CatalogUnavailable()
            return self._services


def service_item(service: Service) -> dict:
    """One `<service>` of GET services."""
    return {"service_code": service.code, "service_name": service.name,
            "description": (f"{service.name}: " + "; ".join(n for _, n in service.subcategories)
                            if service.subcategories else service.name),
            "metadata": True, "type": "batch",
            "keywords": ", ".join(n for _, n in service.subcategories),
            "group": "LAPOR"}


def definition(service: Service) -> dict:
    """GET services/{service_code}: the subcategory, the kind and the privacy flags."""
    return {"service_code": service.code, "attributes": [
        _attribute("subcategory", 1, "Subkategori (subcategory)", [
            {"key": code, "name": name} for code, name in service.subcategories]),
        _attribute("kind", 2, "Jenis laporan (kind of report); PENGADUAN when left out", [
            {"key": kind, "name": KIND_NAMES[kind]} for kind in KINDS]),
        _attribute("anonymous", 3, "Rahasiakan identitas pelapor (hide the reporter's "
                                   "identity from agencies and the public)", YES_NO),
        _attribute("confidential", 4, "Rahasiakan isi laporan (hide the report's content "
                                      "from the public)", YES_NO),
    ]}


def _attribute(code: str, order: int, description: str, values: list[dict]) -> dict:
    return {"variable": True, "code": code, "datatype": "singlevaluelist", "required": False,
            "datatype_description": None, "order": order, "description": description,
            "values": values}
