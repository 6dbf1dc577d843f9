"""Automations and webhooks through zenpy, against the real server with its real workers: an
automation administered with zenpy and run by the scheduler; a webhook created with zenpy,
called by a trigger, signed as Zendesk signs, and its invocation listed through zenpy."""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

import pytest
from zenpy.lib.api_objects import Automation, Comment, Ticket, Trigger, Webhook
from zenpy.lib.exception import APIException


class Receiver:
    """A local webhook endpoint recording (headers with lower-case names, body) of every request."""

    def __init__(self):
        self.requests = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests) < n:
            time.sleep(0.1)
        return self.requests

    def close(self):
        self.httpd.shutdown()


def wait_until(fn, timeout=30, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def test_automation_administered_with_zenpy_runs_on_the_scheduler(admin_client, admin_session, api_url):
    tag = "auto_" + uuid.uuid4().hex[:8]
    # Refused: no action makes a condition false, so it would act on the same tickets hourly.
    with pytest.raises(APIException) as e:
        admin_client.automations.create(Automation(
            title="Forever",
            conditions={"all": [{"field": "status", "operator": "is", "value": "open"},
                                {"field": "NEW", "operator": "greater_than", "value": "1"}], "any": []},
            actions=[{"field": "priority", "value": "high"}],
        ))
    assert e.value.response.status_code == 422
    assert "nullify" in e.value.response.text

    # Tickets younger than an hour without the tag get it: the tag nullifies the condition.
    auto = admin_client.automations.create(Automation(
        title=f"Tag fresh {tag}",
        conditions={"all": [{"field": "status", "operator": "is", "value": "new"},
                            {"field": "NEW", "operator": "less_than", "value": "1"},
                            {"field": "current_tags", "operator": "includes", "value": tag},
                            {"field": "current_tags", "operator": "not_includes", "value": "seen_" + tag}],
                    "any": []},
        actions=[{"field": "current_tags", "value": "seen_" + tag}],
    ))
    try:
        assert auto.id and auto.active is True
        assert auto.id in [a.id for a in admin_client.automations()]
        auto.title = f"Tag fresh tickets {tag}"
        admin_client.automations.update(auto)
        assert admin_client.automations(id=auto.id).title == f"Tag fresh tickets {tag}"

        ticket = admin_client.tickets.create(Ticket(subject="New one", comment=Comment(body="x"), tags=[tag])).ticket
        # Ask for a run now instead of waiting for the hour; the scheduler picks it up.
        r = admin_session.post(f"{api_url}/automations/run.json")
        assert r.status_code == 202, r.text
        tagged = wait_until(lambda: "seen_" + tag in admin_client.tickets(id=ticket.id).tags)
        assert tagged, admin_session.get(f"{api_url}/automations/status.json").text
        audits = list(admin_client.tickets.audits(ticket=ticket.id))
        last = audits[-1]
        assert last.author_id == -1
        assert last.via.source.rel == "automation"
        assert last.via.source.from_["id"] == auto.id
        status = admin_session.get(f"{api_url}/automations/status.json").json()
        assert status["last_run"]["fired"][str(auto.id)] >= 1
        assert status["running"] is None
    finally:
        admin_client.automations.delete(auto)


def test_webhook_created_with_zenpy_is_called_signed_and_recorded(admin_client, admin_session, api_url):
    rx = Receiver()
    tag = "hook_" + uuid.uuid4().hex[:8]
    hook = admin_client.webhooks.create(Webhook(
        name=f"Bridge {tag}", endpoint=rx.url, http_method="POST", request_format="json",
        status="active", subscriptions=["conditional_ticket_events"],
    ))
    trig = None
    try:
        assert isinstance(hook.id, str) and hook.id
        secret = admin_client.webhooks.show_secret(hook).secret
        assert len(secret) >= 16
        assert hook.id in [w.id for w in admin_client.webhooks.list()]
        trig = admin_client.triggers.create(Trigger(
            title=f"Notify bridge {tag}",
            conditions={"all": [{"field": "update_type", "operator": "is", "value": "Create"},
                                {"field": "current_tags", "operator": "includes", "value": tag}], "any": []},
            actions=[{"field": "notification_webhook",
                      "value": [hook.id, '{"ticket_id": "{{ticket.id}}", "subject": "{{ticket.title}}", "requester": "{{ticket.requester.email}}"}']}],
        ))
        ticket = admin_client.tickets.create(Ticket(subject='Quotes "inside"', comment=Comment(body="x"), tags=[tag])).ticket
        got = rx.wait_for(1)
        assert len(got) == 1, got
        headers, body = got[0]
        stamp = headers["x-zendesk-webhook-signature-timestamp"]
        want = base64.b64encode(hmac.new(secret.encode(), (stamp + body).encode(), hashlib.sha256).digest()).decode()
        assert headers["x-zendesk-webhook-signature"] == want
        assert headers["x-zendesk-webhook-id"] == hook.id
        assert headers["x-opsdesk-idempotency-key"].startswith("event:")
        assert json.loads(body) == {"ticket_id": str(ticket.id), "subject": 'Quotes "inside"', "requester": "admin@example.com"}
        # The invocation is recorded (zenpy reads the list), with its attempt.
        inv = wait_until(lambda: [i for i in admin_client.webhooks.invocations(hook) if i.status == "success"])
        assert len(inv) == 1
        attempts = admin_session.get(f"{api_url}/webhooks/{hook.id}/invocations/{inv[0].id}/attempts.json").json()["attempts"]
        assert [a["status_code"] for a in attempts] == [200]
        # The test endpoint calls the webhook once, queueing nothing.
        resp = admin_session.post(f"{api_url}/webhooks/test.json?webhook_id={hook.id}", json={"request": {"payload": '{"ping": true}'}}).json()
        assert resp["response"]["status"] == 200
        assert rx.wait_for(2)[-1][1] == '{"ping": true}'
    finally:
        if trig is not None:
            admin_client.triggers.delete(trig)
        admin_client.webhooks.delete(hook)
        rx.close()
