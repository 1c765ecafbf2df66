"""A report's whole life with real processes (intake, routing, notify), a real SMTP server
and a real agency webhook receiver, driven the way people drive it: the citizen over the
citizen API with the report's access token, the national admin and agency officers over
the staff API with their own tokens.

And the privacy promise checked the way a leak would happen: an anonymous report and a
confidential one go through every action while every HTTP answer, webhook, email, and log
line is kept; none of them may carry what it must not."""

from __future__ import annotations

import json

import requests

from tests.integration.helpers import wait_for

REPORTER = {"name": "Rina Marlina", "email": "rina@contoh.id", "phone": "081234567890"}
SECRET_BODY = ("Dokter jaga di Puskesmas Muaro meminta uang tambahan Rp 500.000 kepada "
               "keluarga pasien sebelum pasien ditangani di ruang gawat darurat.")
# The anonymous report is another matter at another puskesmas: similar texts would be linked
# as duplicates or held for the national admin to compare.
ANONYMOUS_BODY = ("Antrean di Puskesmas Kumanis sangat panjang, dokter baru datang pukul "
                  "sebelas siang dan pasien lansia menunggu berjam-jam.")


class Staff:
    """A staff member calling intake's staff API with their own token."""

    def __init__(self, stack, token: str):
        self.stack, self.token = stack, token
        self.answers: list[str] = []

    def get(self, path: str, **params) -> dict:
        response = requests.get(f"{self.stack.base_url}/api/v1/staff{path}", params=params,
                                headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        self.answers.append(response.text)
        assert response.status_code == 200, response.text
        return response.json()

    def act(self, tracking_id: str, action: str, **body) -> dict:
        response = requests.post(
            f"{self.stack.base_url}/api/v1/staff/tickets/{tracking_id}/{action}", json=body,
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        self.answers.append(response.text)
        assert response.status_code == 200, (action, response.text)
        return response.json()


def reporter_post(stack, answers: list, tracking_id: str, token: str, action: str,
                  **body) -> dict:
    response = requests.post(f"{stack.base_url}/api/v1/reports/{tracking_id}/{action}",
                             json=body, headers={"Authorization": f"Bearer {token}"},
                             timeout=10)
    answers.append(response.text)
    assert response.status_code in (200, 201), (action, response.text)
    return response.json()


def hooks(stack, tracking_id: str) -> list[dict]:
    return [json.loads(r["body"]) for r in stack.agency.for_tracking(tracking_id)]


def start_all(stack) -> None:
    for service in ("routing", "notify", "intake"):
        stack.start(service)


def test_submit_triage_verify_hand_over_accept_follow_up_reply_close_rate(stack):
    national = Staff(stack, stack.staff_token("admin.nasional", "national_admin"))
    pupr = Staff(stack, stack.staff_token("siti.pupr", "agency_officer", "PUPR-13.03"))
    province = Staff(stack, stack.staff_token("rudi.sumbar", "agency_officer", "PEMPROV-13"))
    start_all(stack)

    # Too short to dispatch on its own: it waits for the national admin.
    answer = stack.submit(body="Jalan rusak parah.")
    tid, token = answer["tracking_id"], answer["access_token"]
    wait_for(lambda: [t["tracking_id"] for t in national.get(
        "/tickets", agency="ADMIN-NASIONAL")["tickets"]] == [tid], 30,
        what="the report in the triage queue")
    assert pupr.get("/tickets")["tickets"] == [], "not the agency's yet"

    ticket = national.act(tid, "verify", expected_version=1)
    assert (ticket["state"], ticket["agency"]["code"]) == ("DISPATCHED", "PUPR-13.03")
    wait_for(lambda: [h["event"] for h in hooks(stack, tid)] == ["ticket.dispatched"], 30,
             what="the agency's webhook")

    # Not our authority: the province's office gets it, with the chain kept.
    ticket = pupr.act(tid, "decline", reason="Ruas jalan provinsi, bukan kabupaten")
    assert (ticket["state"], ticket["agency"]["code"]) == ("DISPATCHED", "PEMPROV-13")
    wait_for(lambda: [(h["event"], h["agency"]["code"]) for h in hooks(stack, tid)
                      if h["event"] == "ticket.dispatched"] == [
        ("ticket.dispatched", "PUPR-13.03"), ("ticket.dispatched", "PEMPROV-13")], 30,
        what="the province's webhook")
    assert [t["tracking_id"] for t in province.get("/tickets")["tickets"]] == [tid]

    ticket = province.act(tid, "accept", complexity="DISPUTE")
    assert ticket["complexity"] == "DISPUTE"
    province.act(tid, "follow-up", response="UPTD jalan provinsi menambal lubang pekan ini.")
    wait_for(lambda: any("menambal lubang" in m.get_body(("plain",)).get_content()
                         for m in stack.emails_to("rina@contoh.id")), 30,
             what="the reporter's email with the follow-up")

    reporter_answers: list[str] = []
    replied = reporter_post(stack, reporter_answers, tid, token, "replies",
                            message="Sudah seminggu, lubangnya belum ditambal.")
    assert (replied["outcome"], replied["status"]) == ("replied", "REPORTER_REPLIED")
    wait_for(lambda: any(h["event"] == "ticket.message" and "belum ditambal" in json.dumps(h)
                         for h in hooks(stack, tid)), 30, what="the reply at the province")

    province.act(tid, "follow-up", response="Sudah ditambal pada hari Kamis.")
    ticket = province.act(tid, "close", note="Pelapor setuju lewat telepon")
    assert ticket["state"] == "CLOSED"
    rated = reporter_post(stack, reporter_answers, tid, token, "rating", rating=4,
                          comment="Akhirnya beres")
    assert rated["outcome"] == "rated"

    seen = national.get(f"/tickets/{tid}")
    assert seen["rating"] == 4
    assert [(c["agency"]["code"], c["reason"]) for c in seen["chain"]] == [
        ("PUPR-13.03", "dispatched"), ("PEMPROV-13", "not_our_authority")]
    trail = national.get(f"/tickets/{tid}/audit")["entries"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("submit", "citizen"), ("verify", "admin.nasional"),
        ("not_our_authority", "siti.pupr"), ("accept", "rudi.sumbar"),
        ("follow_up", "rudi.sumbar"), ("reply", "citizen"), ("follow_up", "rudi.sumbar"),
        ("close", "rudi.sumbar"), ("rate", "citizen")]

    # The rating's answer already set the status to CLOSED (the reporter sees their own
    # action at once); the timeline entries follow with routing's events.
    public = wait_for(lambda: (v := stack.report(tid))["status"] == "CLOSED"
                      and v["timeline"][-1]["status"] == "CLOSED" and v, 30,
                      what="the public timeline to show the closure")
    assert "Sudah ditambal pada hari Kamis." in [e["note"] for e in public["timeline"]]
    own = stack.report(tid, token)
    assert "rate" not in own.get("actions", []), "rated once already"


def test_anonymous_and_confidential_reports_leak_nothing_anywhere(stack):
    """Every answer, webhook, email and log line of two reports' whole lives: the anonymous
    reporter's name, email and phone reach only notify's own email to them; the confidential
    report's text never reaches a public answer."""
    national = Staff(stack, stack.staff_token("admin.nasional", "national_admin"))
    dinkes = Staff(stack, stack.staff_token("dewi.dinkes", "agency_officer", "DINKES-13.03"))
    start_all(stack)
    public_answers: list[str] = []
    reporter_answers: list[str] = []

    anonymous = stack.submit(anonymous=True, title="Pelayanan lambat di Puskesmas Kumanis",
                             body=ANONYMOUS_BODY)
    confidential = stack.submit(confidential=True, title="Pungutan liar di Puskesmas Muaro",
                                body=SECRET_BODY, reporter={"name": "Budi Santoso",
                                                            "email": "budi@contoh.id"})
    for answer in (anonymous, confidential):
        tid, token = answer["tracking_id"], answer["access_token"]
        wait_for(lambda tid=tid: dinkes.get("/tickets", q="Puskesmas")["tickets"] and any(
            t["tracking_id"] == tid for t in dinkes.get("/tickets")["tickets"]), 30,
            what="the ticket at Dinas Kesehatan")
        dinkes.get(f"/tickets/{tid}")
        dinkes.act(tid, "accept")
        dinkes.act(tid, "messages", text="Mohon sebutkan tanggal kejadian.")
        reporter_post(stack, reporter_answers, tid, token, "replies",
                      message="Tanggal 28 November, malam hari.")
        dinkes.act(tid, "follow-up", response="Dokter jaga sudah ditegur dan uang "
                                              "dikembalikan.")
        reporter_post(stack, reporter_answers, tid, token, "confirm", comment="Terima kasih")
        reporter_post(stack, reporter_answers, tid, token, "rating", rating=5)
        national.get(f"/tickets/{tid}/audit")
        wait_for(lambda tid=tid: len(stack.emails_to(
            "rina@contoh.id" if tid == anonymous["tracking_id"] else "budi@contoh.id")) >= 4,
            30, what="the reporter's emails")
        for path in ("", "?q=pungutan"):
            response = requests.get(f"{stack.base_url}/api/v1/reports/{tid}{path}", timeout=10)
            public_answers.append(response.text)

    # What the anonymous reporter's identity may not reach: the agency (staff answers and
    # webhooks), public answers, any log line.
    identity = ("Rina", "Marlina", "rina@contoh.id", "81234567890")
    agency_side = dinkes.answers + national.answers + [
        json.dumps(h) for h in hooks(stack, anonymous["tracking_id"])]
    logs = stack.log("intake") + stack.log("routing") + stack.log("notify")
    for text in agency_side + public_answers + [logs]:
        for part in identity:
            assert part not in text, f"{part!r} leaked"
    # Nor the confidential reporter's contacts (the agency may see a name, never contacts).
    for text in agency_side + public_answers + [logs]:
        assert "budi@contoh.id" not in text
    # The confidential report's content never reaches a public answer or a log line.
    secret_parts = ("Rp 500.000", "meminta uang tambahan", "ditegur")
    confidential_public = [a for a in public_answers if confidential["tracking_id"] in a]
    for text in confidential_public + [logs]:
        for part in secret_parts:
            assert part not in text, f"confidential {part!r} leaked"
    # ...while the agency that must act on it does see it.
    assert any("Rp 500.000" in a for a in dinkes.answers)
