"""Duplicates with real processes (intake, routing, notify), a real SMTP server and a real
agency receiver, driven the way people drive them: three residents of Sijunjung report the
same pothole. The second says it almost word for word and is linked at once; the third types
in a hurry and waits for the national admin, who links it over the staff API; a fourth
report about another problem on the same street is not touched. The agency works only the
first report, and the two others' reporters hear of every step of it."""

from __future__ import annotations

import requests

from tests.e2e.test_ticket_lifecycle import Staff, hooks, start_all
from tests.integration.helpers import wait_for
from tests.integration.test_duplicates import DRAIN, ROAD, ROAD_AGAIN, ROAD_TYPOS

RINA, BUDI, ANI, DEWI = ("rina@contoh.id", "budi@contoh.id", "ani@contoh.org",
                         "dewi@contoh.id")


def submit(stack, text: tuple[str, str], email: str, language: str = "id") -> str:
    return stack.submit(title=text[0], body=text[1], reporter={
        "name": "Warga Sijunjung", "email": email, "language": language})["tracking_id"]


def opened(stack, staff, tracking_id: str) -> dict | None:
    """The ticket as `staff` sees it, once routing has opened it (None before)."""
    response = requests.get(f"{stack.base_url}/api/v1/staff/tickets/{tracking_id}",
                            headers={"Authorization": f"Bearer {staff.token}"}, timeout=10)
    return response.json() if response.status_code == 200 else None


def subjects(stack, address: str) -> list[str]:
    return [m["Subject"] for m in stack.emails_to(address)]


def test_three_reports_of_one_pothole_become_one_ticket_with_three_reporters(stack):
    national = Staff(stack, stack.staff_token("admin.nasional", "national_admin"))
    pupr = Staff(stack, stack.staff_token("siti.pupr", "agency_officer", "PUPR-13.03"))
    start_all(stack)

    first = submit(stack, ROAD, RINA)
    wait_for(lambda: opened(stack, national, first), 30, what="routing to open the first ticket")
    if national.get(f"/tickets/{first}")["state"] == "SUBMITTED":
        national.act(first, "verify")
    assert national.get(f"/tickets/{first}")["agency"]["code"] == "PUPR-13.03"

    # The same report again, as a neighbour writes it: linked at once.
    second = submit(stack, ROAD_AGAIN, BUDI, "en")
    linked = wait_for(lambda: (v := stack.report(second))["linked_to"] and v, 30,
                      what="the second report linked to the first")
    assert linked["status_label"] == f"Digabung dengan laporan {first}"
    assert linked["linked_to"]["tracking_id"] == first
    assert linked["linked_to"]["agency"]["code"] == "PUPR-13.03"
    seen = national.get(f"/tickets/{second}")
    assert (seen["state"], seen["duplicate_of"]) == ("ARCHIVED", first)
    wait_for(lambda: f"[LAPOR!] Your report {second} was linked to {first}"
             in subjects(stack, BUDI), 30, what="the second reporter's email, in English")

    # Typed in a hurry: a suggestion the national admin sees on both tickets, and links.
    third = submit(stack, ROAD_TYPOS, ANI)
    waiting = wait_for(lambda: (t := opened(stack, national, third)) and t[
        "duplicate_candidates"] and t, 30, what="the suggestion on the third ticket")
    assert waiting["state"] == "SUBMITTED" and waiting["duplicate_of"] is None
    assert waiting["duplicate_candidates"][0]["tracking_id"] == first
    assert waiting["duplicate_candidates"][0]["resolution"] == "pending"
    assert {(c["tracking_id"], c["resolution"]) for c in national.get(
        f"/tickets/{first}")["duplicate_candidates"]} == {(second, "linked"),
                                                           (third, "pending")}
    wrong = requests.post(f"{stack.base_url}/api/v1/staff/tickets/{third}/link",
                          json={"master": "LPR-000-000-001"}, timeout=10,
                          headers={"Authorization": f"Bearer {national.token}"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "master"
    refused = requests.post(f"{stack.base_url}/api/v1/staff/tickets/{third}/link",
                            json={"master": first}, timeout=10,
                            headers={"Authorization": f"Bearer {pupr.token}"})
    assert refused.status_code == 403
    ticket = national.act(third, "link", master=first.lower().replace("-", " "))
    assert (ticket["state"], ticket["duplicate_of"]) == ("ARCHIVED", first)
    # What the citizen sees follows routing's event (intake's read model gathers for 0.2 s).
    wait_for(lambda: stack.report(third)["linked_to"], 30,
             what="the third report shown as linked to the first")

    # Another problem on the same street is a ticket of its own.
    other = submit(stack, DRAIN, DEWI)
    drain = wait_for(lambda: opened(stack, national, other), 30, what="the drainage report")
    assert drain["duplicate_of"] is None and drain["duplicate_candidates"] == []

    # Dukungan: two linked reports back the first; one more from the public.
    supported = requests.post(f"{stack.base_url}/api/v1/reports/{first}/support",
                              headers={"X-Client-Key": "e2e-client-01"}, timeout=10).json()
    assert supported["support_count"] == 3
    wait_for(lambda: national.get(f"/tickets/{first}")["support_count"] == 3, 30,
             what="routing's count of the first ticket's support")

    # The agency works the first ticket only; all three reporters hear of it.
    assert [h["tracking_id"] for h in hooks(stack, second) + hooks(stack, third)] == []
    pupr.act(first, "accept")
    pupr.act(first, "follow-up", response="Lubang di depan pasar sudah ditambal hari ini.")
    wait_for(lambda: any("sudah ditambal" in m.get_body(("plain",)).get_content()
                         for m in stack.emails_to(RINA)), 30, what="the first reporter's email")
    wait_for(lambda: f"[LAPOR!] Report {second} (linked to {first}): Followed up"
             in subjects(stack, BUDI), 30, what="the second reporter's update")
    wait_for(lambda: f"[LAPOR!] Laporan {third} (digabung dengan {first}): Ditindaklanjuti"
             in subjects(stack, ANI), 30, what="the third reporter's update")
    followed = wait_for(lambda: (v := stack.report(third))["linked_to"]["status"] ==
                        "FOLLOWED_UP" and v, 30, what="the linked view to follow the first")
    assert followed["status"] == "ARCHIVED"
    # The drainage report's reporter follows nobody and hears nothing of the pothole.
    assert not [s for s in subjects(stack, DEWI) if first in s or "digabung" in s]
