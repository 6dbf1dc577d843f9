"""The email channel, driven as a mail system meets it: Python's smtplib talks to opsdesk's SMTP
listener, an aiosmtpd sink stands in for the outgoing relay, `opsdesk mail ingest` is run as an
MTA's pipe, and the server is killed with SIGKILL between spooling and ingest.

Each test starts a server of its own (conftest.Instance) with the same binary and backend as
the session one.
"""

import email
import email.policy
import os
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
import uuid

import pytest
import requests
from aiosmtpd.controller import Controller

import conftest

CORPUS = os.path.join(os.path.dirname(__file__), "..", "mail", "corpus")
SUPPORT = "support@opsdesk.test"
WAIT = 20.0  # seconds any single expected effect may take


def corpus(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        return f.read()


class Sink:
    """An SMTP server that keeps every message it receives (the outgoing relay)."""

    def __init__(self):
        self.messages = []
        self.cond = threading.Condition()
        self.port = conftest._free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.cond:
            self.messages.append((list(envelope.rcpt_tos), msg))
            self.cond.notify_all()
        return "250 OK"

    def wait_for(self, pred, what):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while True:
                found = [m for m in self.messages if pred(*m)]
                if found:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, f"no outgoing mail {what} within {WAIT}s; got {[(r, m['Subject']) for r, m in self.messages]}"
                self.cond.wait(left)

    def stop(self):
        self.controller.stop()


class MailServer:
    def __init__(self, instance, sink, *extra):
        self.smtp_port = conftest._free_port()
        args = ["--smtp-listen", f"127.0.0.1:{self.smtp_port}", "--support-address", SUPPORT]
        if sink is not None:
            args += ["--smtp-relay", f"smtp://127.0.0.1:{sink.port}"]
        self.inst = instance(*args, *extra)
        self.inst.start()
        self.s = requests.Session()
        self.s.auth = self.inst.auth

    def api(self, method, path, **kw):
        r = self.s.request(method, f"{self.inst.url}/api/v2/{path}", timeout=10, **kw)
        return r

    def send(self, raw, to=(SUPPORT,), sender="someone@customer.example"):
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as c:
            return c.sendmail(sender, list(to), raw)

    def inbound(self, state=None):
        q = {"per_page": 100}
        if state:
            q["state"] = state
        r = self.api("GET", "mail/inbound.json", params=q)
        assert r.status_code == 200, r.text
        return r.json()["inbound"]

    def wait_inbound(self, n, what="messages", timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            got = self.inbound()
            if len(got) >= n:
                return sorted(got, key=lambda r: r["id"])
            assert time.monotonic() < deadline, f"{len(got)} of {n} {what} ingested: {got}\n" + self.inst_log()
            time.sleep(0.05)

    def inst_log(self):
        return conftest._tail(conftest._read_log(self.inst.log), 60)

    def ticket(self, tid):
        r = self.api("GET", f"tickets/{tid}.json")
        assert r.status_code == 200, r.text
        return r.json()["ticket"]

    def comments(self, tid):
        r = self.api("GET", f"tickets/{tid}/comments.json")
        assert r.status_code == 200, r.text
        return r.json()["comments"]


def message(subject, body, sender="dana@customer.example", name="Dana Customer", extra=None, msgid=None):
    msgid = msgid or f"{uuid.uuid4().hex}@customer.example"
    head = [
        f"From: {name} <{sender}>",
        f"To: Support <{SUPPORT}>",
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        "Date: Mon, 30 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ] + list(extra or [])
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode(), msgid


def notify_requester_trigger(ms):
    r = ms.api("POST", "triggers.json", json={"trigger": {
        "title": "Tell the requester",
        "conditions": {"all": [{"field": "comment_is_public", "operator": "is", "value": "true"}]},
        "actions": [{"field": "notification_user", "value": [
            "requester_id", "[#{{ticket.id}}] {{ticket.title}}", "We have your message:\n\n{{ticket.latest_comment}}"]}],
    }})
    assert r.status_code == 201, r.text


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


def test_a_message_becomes_a_ticket_with_its_files(instance):
    ms = MailServer(instance, None)
    ms.send(corpus("attachments.eml"))
    ms.send(corpus("latin1.eml"))
    ms.send(corpus("shift_jis.eml"))
    # Unrelated messages are ingested side by side, in no fixed order.
    recs = sorted(ms.wait_inbound(3), key=lambda r: r["message_id"])
    assert [r["message_id"] for r in recs] == ["attachments-4@customer.example", "latin1-3@customer.example", "shift-jis-15@customer.example"], recs
    assert [r["state"] for r in recs] == ["ticket", "ticket", "ticket"], recs
    t = ms.ticket(recs[0]["ticket_id"])
    assert t["subject"] == "Error report and screenshot"
    assert t["via"]["channel"] == "email"
    assert t["via"]["source"]["from"]["address"] == "ada@customer.example"
    assert t["via"]["source"]["to"]["address"] == SUPPORT
    requester = ms.api("GET", f"users/{t['requester_id']}.json").json()["user"]
    assert (requester["email"], requester["name"], requester["role"]) == ("ada@customer.example", "Ada Lovelace", "end-user")
    # The other person on To/Cc became a CC.
    cc = ms.api("GET", f"users/{t['email_cc_ids'][0]}.json").json()["user"]
    assert cc["email"] == "charles@customer.example"
    c = ms.comments(t["id"])[0]
    assert c["public"] is True and "screenshot of the error" in c["body"]
    assert [(a["file_name"], a["content_type"], a["size"]) for a in c["attachments"]] == [
        ("screenshot.png", "image/png", 74), ("report.csv", "text/csv", 58)]
    csv = ms.s.get(c["attachments"][1]["content_url"], timeout=10)
    assert csv.status_code == 200
    assert csv.content == b"date,requests,errors\n2026-11-29,1520,3\n2026-11-30,1498,41\n"
    assert csv.headers["x-content-type-options"] == "nosniff"
    assert csv.headers["content-disposition"].startswith('attachment; filename="report.csv"')
    one = ms.api("GET", f"attachments/{c['attachments'][0]['id']}.json").json()["attachment"]
    assert one["file_name"] == "screenshot.png" and one["size"] == 74
    # Charsets: ISO-8859-1 quoted-printable with an encoded subject, and Shift_JIS.
    latin = ms.ticket(recs[1]["ticket_id"])
    assert latin["subject"] == "Résumé upload fails"
    assert "café" in latin["description"] and "naïve" in latin["description"]
    jp = ms.ticket(recs[2]["ticket_id"])
    assert jp["subject"] == "ログインについての問い合わせ"
    assert "こんにちは、サポートチーム" in jp["description"]
    # Another end-user may not download the file; without credentials, neither may anyone.
    r = ms.api("POST", "users.json", json={"user": {"name": "Other", "email": "other@else.example", "role": "end-user", "password": "other-pass-123"}})
    assert r.status_code == 201, r.text
    assert requests.get(c["attachments"][1]["content_url"], auth=("other@else.example", "other-pass-123"), timeout=10).status_code == 404
    assert requests.get(c["attachments"][1]["content_url"], timeout=10).status_code == 401


def test_unknown_recipients_and_oversized_messages_are_refused_in_the_session(instance):
    ms = MailServer(instance, None, "--smtp-max-message-bytes", "100000")
    with smtplib.SMTP("127.0.0.1", ms.smtp_port, timeout=10) as c:
        code, _ = c.ehlo("client.test")
        assert code == 250
        assert "size" in c.esmtp_features and c.esmtp_features["size"] == "100000"
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("a@customer.example", ["sales@opsdesk.test"], b"Subject: x\r\n\r\nhi\r\n")
        assert e.value.recipients["sales@opsdesk.test"][0] == 550
        big, _ = message("Big", "x" * 200_000)
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as e:
            c.sendmail("a@customer.example", [SUPPORT], big)
        assert e.value.smtp_code == 552
        # The session is still usable; a plus address of a support address is accepted.
        ok, _ = message("Small", "fine")
        assert c.sendmail("a@customer.example", ["support+anything@opsdesk.test"], ok) == {}
    recs = ms.wait_inbound(1)
    assert len(recs) == 1 and recs[0]["subject"] == "Small"


def test_replies_thread_by_reply_address_message_id_and_subject_tag(instance, sink):
    ms = MailServer(instance, sink)
    notify_requester_trigger(ms)
    raw, first_id = message("Build pipeline stuck", "Our pipeline has been pending for an hour.")
    ms.send(raw)
    tid = ms.wait_inbound(1)[0]["ticket_id"]
    # The notification threads under the customer's message and carries the reply address.
    (to, note), = sink.wait_for(lambda to, m: "dana@customer.example" in to, "to the requester")
    assert note["Subject"] == f"[#{tid}] Build pipeline stuck"
    assert note["In-Reply-To"] == f"<{first_id}>"
    assert f"<{first_id}>" in note["References"]
    assert note["Auto-Submitted"] == "auto-generated"
    assert note["Message-ID"].startswith(f"<opsdesk.{tid}.")
    reply_to = note["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith(f"support+id{tid}-") and reply_to.endswith("@opsdesk.test")
    assert note.get_body(("plain",)).get_content().startswith("##- Please type your reply above this line -##")
    assert "pending for an hour" in note.get_body(("html",)).get_content()
    # 1. A reply to the notification (In-Reply-To: its Message-ID), quoting it.
    quoted = "Still stuck.\n\nOn Mon, Nov 30, 2026 at 10:05 AM Support <support@opsdesk.test> wrote:\n> ##- Please type your reply above this line -##\n> We have your message"
    r1, _ = message(f"Re: [#{tid}] Build pipeline stuck", quoted, extra=[f"In-Reply-To: {note['Message-ID']}", f"References: <{first_id}> {note['Message-ID']}"])
    ms.send(r1)
    # 2. A reply that only has the reply address (a client that drops In-Reply-To).
    r2, _ = message("Another thing", "Also the runner is offline.")
    ms.send(r2.replace(f"To: Support <{SUPPORT}>".encode(), f"To: {reply_to}".encode()), to=[reply_to])
    # 3. A reply with only the subject tag.
    r3, _ = message(f"Re: [#{tid}] stuck", "Third note.")
    ms.send(r3)
    recs = ms.wait_inbound(4)
    assert [r["state"] for r in recs[1:]] == ["comment", "comment", "comment"], recs
    assert [r["ticket_id"] for r in recs] == [tid] * 4
    assert recs[1]["reason"].startswith("threaded by In-Reply-To/References")
    assert recs[2]["reason"].startswith("threaded by reply address")
    assert recs[3]["reason"] == f"threaded by subject tag [#{tid}]"
    bodies = [c["body"] for c in ms.comments(tid)]
    assert bodies[1] == "Still stuck."  # the quoted history is not kept
    assert bodies[2:] == ["Also the runner is offline.", "Third note."]
    # An agent replying by email through the signed reply address may use Zendesk's mail
    # commands on the first lines.
    r = ms.api("POST", "users.json", json={"user": {"name": "Alan Agent", "email": "alan@opsdesk.test", "role": "agent"}})
    assert r.status_code == 201, r.text
    cmd, _ = message("Re: stuck", "#status pending\n#tags waiting_on_customer\n#public false\n\nChecked the runner logs.",
                     sender="alan@opsdesk.test", name="Alan Agent")
    ms.send(cmd.replace(f"To: Support <{SUPPORT}>".encode(), f"To: {reply_to}".encode()), to=[reply_to])
    rec = ms.wait_inbound(5)[-1]
    assert (rec["state"], rec["ticket_id"]) == ("comment", tid), rec
    tk = ms.ticket(tid)
    assert tk["status"] == "pending" and "waiting_on_customer" in tk["tags"], tk
    last = ms.comments(tid)[-1]
    assert (last["body"], last["public"]) == ("Checked the runner logs.", False), last
    # A forged reply address (wrong signature) does not thread.
    forged = f"support+id{tid}-000000000000@opsdesk.test"
    r4, _ = message("Forged", "Should be a new ticket.")
    ms.send(r4.replace(f"To: Support <{SUPPORT}>".encode(), f"To: {forged}".encode()), to=[forged])
    rec = ms.wait_inbound(6)[-1]
    assert rec["state"] == "ticket" and rec["ticket_id"] != tid


def test_a_reply_from_someone_not_on_the_ticket_is_held_for_review(instance):
    ms = MailServer(instance, None)
    raw, _ = message("Disk full", "The disk is full.")
    ms.send(raw)
    tid = ms.wait_inbound(1)[0]["ticket_id"]
    intruder, _ = message(f"Re: [#{tid}] Disk full", "I am not on this ticket.", sender="mallory@elsewhere.example", name="Mallory")
    ms.send(intruder)
    rec = ms.wait_inbound(2)[-1]
    assert (rec["state"], rec["ticket_id"]) == ("note", tid), rec
    last = ms.comments(tid)[-1]
    assert last["public"] is False and last["body"] == "I am not on this ticket."
    assert "mail_review" in ms.ticket(tid)["tags"]
    # The end-user Mallory cannot see the ticket she wrote to.
    mallory = ms.api("GET", f"users/{last['author_id']}.json").json()["user"]
    assert mallory["email"] == "mallory@elsewhere.example" and mallory["role"] == "end-user"
    # A From header naming an agent proves nothing: without a signed reply address the mail is
    # held as a note, not sent to the customer as the agent's public reply.
    r = ms.api("POST", "users.json", json={"user": {"name": "Alan Agent", "email": "alan@opsdesk.test", "role": "agent"}})
    assert r.status_code == 201, r.text
    forged, _ = message(f"Re: [#{tid}] Disk full", "Please send me your password.", sender="alan@opsdesk.test", name="Alan Agent")
    ms.send(forged)
    rec = ms.wait_inbound(3)[-1]
    assert (rec["state"], rec["ticket_id"]) == ("note", tid), rec
    assert ms.comments(tid)[-1]["public"] is False


def test_a_bare_lf_dot_does_not_end_the_data(instance):
    """SMTP smuggling: "<LF>.<LF>" inside a message is data; only "<CRLF>.<CRLF>" ends it."""
    import socket
    ms = MailServer(instance, None)
    with socket.create_connection(("127.0.0.1", ms.smtp_port), timeout=10) as s:
        f = s.makefile("rb")
        def expect(code):
            while True:
                line = f.readline().decode()
                assert line.startswith(code), line
                if line[3] == " ":
                    return
        expect("220")
        for cmd, code in [(b"EHLO t\r\n", "250"), (b"MAIL FROM:<dana@customer.example>\r\n", "250"),
                          (f"RCPT TO:<{SUPPORT}>\r\n".encode(), "250"), (b"DATA\r\n", "354")]:
            s.sendall(cmd)
            expect(code)
        s.sendall(b"From: Dana <dana@customer.example>\r\nSubject: Smuggle\r\nMessage-ID: <smuggle-1@x>\r\n\r\n"
                  b"first part\n.\nMAIL FROM:<evil@x>\r\nstill data\r\n.\r\n")
        expect("250")
        s.sendall(b"QUIT\r\n")
        expect("221")
    recs = ms.wait_inbound(1)
    assert len(recs) == 1 and recs[0]["subject"] == "Smuggle"
    body = ms.comments(recs[0]["ticket_id"])[0]["body"]
    assert "MAIL FROM:<evil@x>" in body and "still data" in body


def test_the_same_message_twice_makes_one_ticket(instance):
    ms = MailServer(instance, None)
    raw, msgid = message("Duplicate delivery", "Sent twice by a retrying MTA.")
    ms.send(raw)
    ms.send(raw)
    # And a third time through the relay endpoint.
    r = ms.api("POST", "mail/inbound", data=raw, headers={"Content-Type": "message/rfc822"})
    assert r.status_code == 202, r.text
    assert r.json()["inbound"]["spooled"]
    marker, _ = message("Marker", "after the duplicates")
    ms.send(marker)
    recs = ms.wait_inbound(2)
    deadline = time.monotonic() + WAIT
    while os.listdir(os.path.join(ms.inst.data_dir, "mail-spool", "new")) and time.monotonic() < deadline:
        time.sleep(0.05)
    recs = ms.inbound()
    assert sorted(r["subject"] for r in recs) == ["Duplicate delivery", "Marker"], recs
    found = ms.api("GET", "search.json", params={"query": '"Sent twice by a retrying MTA"'}).json()
    assert found["count"] == 1
    assert [r for r in recs if r["subject"] == "Duplicate delivery"][0]["message_id"] == msgid


def test_loops_are_broken(instance, sink):
    ms = MailServer(instance, sink)
    notify_requester_trigger(ms)
    # An out-of-office reply: it is recorded on a ticket, but no email goes back to it.
    ms.send(corpus("autoreply.eml"))
    # Bulk mail and a bounce are not tickets.
    ms.send(corpus("bulk.eml"))
    r = ms.api("POST", "users.json", json={"user": {"name": "Gone", "email": "gone@customer.example"}})
    assert r.status_code == 201, r.text
    gone = r.json()["user"]["id"]
    ms.send(corpus("bounce.eml"))
    # A normal message from someone else, whose notification shows the outbox has run.
    raw, _ = message("Normal request", "Hello")
    ms.send(raw)
    recs = ms.wait_inbound(4)
    by = {r["subject"][:14]: r for r in recs}
    assert by["Automatic repl"]["state"] == "ticket" and by["Automatic repl"]["auto"] == "auto_replied"
    assert by["This week at A"]["state"] == "suspended" and by["This week at A"]["ticket_id"] is None
    # The corpus bounce returns a Message-ID we never signed: a forged report changes nothing.
    assert by["Undelivered Ma"]["state"] == "bounce"
    assert by["Undelivered Ma"]["reason"] == "delivery report about mail this help desk did not send: ignored"
    ident = ms.api("GET", f"users/{gone}/identities.json").json()["identities"][0]
    assert (ident["deliverable_state"], ident["undeliverable_count"]) == ("deliverable", 0)
    sink.wait_for(lambda to, m: "dana@customer.example" in to, "for the normal request")
    outbox = ms.api("GET", "outbox.json", params={"kind": "email"}).json()["outbox"]
    assert [o["payload"]["to"] for o in outbox] == ["dana@customer.example"], outbox
    # The out-of-office sender (ada@) got nothing back; only the normal request was answered.
    assert [to for to, _ in sink.messages] == [["dana@customer.example"]]
    # Our own notification coming back (a forwarding rule pointing at support) is suspended.
    _, note = sink.messages[0]
    ms.send(note.as_bytes())
    back = ms.wait_inbound(5)[-1]
    assert (back["state"], back["reason"]) == ("suspended", "mail sent by this help desk came back"), back
    # A real report about that notification marks the requester's address undeliverable.
    dsn = ("From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
           f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           "Message-ID: <dsn-2@mx.customer.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
           "Final-Recipient: rfc822; dana@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {note['Message-ID']}\r\n"
           f"Subject: {note['Subject']}\r\n--b--\r\n").encode()
    ms.send(dsn)
    rec = ms.wait_inbound(6)[-1]
    assert rec["state"] == "bounce" and "dana@customer.example" in rec["reason"], rec
    dana = ms.api("GET", "users/search.json", params={"query": "dana@customer.example"}).json()["users"][0]
    ident = ms.api("GET", f"users/{dana['id']}/identities.json").json()["identities"][0]
    assert (ident["deliverable_state"], ident["undeliverable_count"]) == ("undeliverable", 1)


def test_a_burst_survives_kill_9_between_spool_and_ingest(instance):
    ms = MailServer(instance, None)
    sent = []
    with smtplib.SMTP("127.0.0.1", ms.smtp_port, timeout=10) as c:
        for i in range(40):
            raw, msgid = message(f"Burst {i}", f"message number {i}")
            assert c.sendmail("dana@customer.example", [SUPPORT], raw) == {}
            sent.append(msgid)
    # Every message above was answered 250; kill the server at once, whatever ingest did.
    ms.inst.kill9()
    ms.inst.start()
    recs = ms.wait_inbound(40, "acknowledged messages after kill -9")
    assert sorted(r["message_id"] for r in recs) == sorted(sent)
    assert len({r["ticket_id"] for r in recs}) == 40


def test_pipe_command_for_an_mta(instance):
    ms = MailServer(instance, None)
    binary = ms.inst.binary
    base = [binary, "mail", "ingest", *ms.inst.db_args, "--support-address", SUPPORT]
    raw, msgid = message("Piped in", "From the MTA's pipe transport.")
    p = subprocess.run([*base, "--recipient", SUPPORT], input=raw, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([*base, "--recipient", "sales@opsdesk.test"], input=raw, capture_output=True, timeout=60)
    assert p.returncode == 67 and b"not a support address" in p.stderr
    p = subprocess.run(base, input=b"", capture_output=True, timeout=60)
    assert p.returncode == 65, p.stderr
    p = subprocess.run([*base, "--max-message-bytes", "10"], input=raw, capture_output=True, timeout=60)
    assert p.returncode == 65 and b"larger than" in p.stderr
    recs = ms.wait_inbound(1)
    assert (recs[0]["message_id"], recs[0]["state"]) == (msgid, "ticket")
    # Spooled while the server is down: ingested when it starts.
    ms.inst.stop()
    raw2, msgid2 = message("While down", "Spooled with the server stopped.")
    p = subprocess.run([*base, "--spool-only"], input=raw2, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ms.inst.start()
    recs = ms.wait_inbound(2)
    assert recs[1]["message_id"] == msgid2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_starttls(instance, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mail.opsdesk.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    ms = MailServer(instance, None, "--smtp-tls-cert", str(cert), "--smtp-tls-key", str(key))
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", ms.smtp_port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        c.starttls(context=ctx)
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
        raw, _ = message("Over TLS", "Encrypted in transit.")
        assert c.sendmail("dana@customer.example", [SUPPORT], raw) == {}
    assert ms.wait_inbound(1)[0]["subject"] == "Over TLS"


def test_uploads_api_with_zenpy(instance):
    from zenpy import Zenpy
    from zenpy.lib.api_objects import Comment, Ticket
    ms = MailServer(instance, None)
    before = os.environ.get("ZENPY_FORCE_NETLOC")
    os.environ["ZENPY_FORCE_NETLOC"] = f"127.0.0.1:{ms.inst.port}"
    os.environ.setdefault("ZENPY_FORCE_SCHEME", "http")
    try:
        z = Zenpy(subdomain="x", email="ops@example.com", token=ms.inst.token, disable_cache=True)
        upload = z.attachments.upload(b"line one\nline two\n", target_name="notes.txt", content_type="text/plain")
        assert upload.token and upload.attachment.file_name == "notes.txt"
        audit = z.tickets.create(Ticket(subject="With a file", comment=Comment(body="see file", uploads=[upload.token])))
        comments = list(z.tickets.comments(audit.ticket.id))
        att = comments[0].attachments[0]
        assert (att.file_name, att.size, att.content_type) == ("notes.txt", 18, "text/plain")
        assert ms.s.get(att.content_url, timeout=10).content == b"line one\nline two\n"
        # A used token cannot be attached again.
        r = ms.api("POST", "tickets.json", json={"ticket": {"subject": "again", "comment": {"body": "x", "uploads": [upload.token]}}})
        assert r.status_code == 422 and "already used" in r.text
        # zenpy's download: the attachment record, then its content URL.
        assert z.attachments.download(att.id).getvalue() == b"line one\nline two\n"
    finally:
        if before is None:
            os.environ.pop("ZENPY_FORCE_NETLOC", None)
        else:
            os.environ["ZENPY_FORCE_NETLOC"] = before


def test_admins_edit_the_mail_templates(instance, sink):
    ms = MailServer(instance, sink, "--mail-from-name", "Acme Support")
    r = ms.api("GET", "mail/settings.json")
    assert r.status_code == 200, r.text
    st = r.json()["mail_settings"]
    assert st["support_addresses"] == [SUPPORT] and st["from_address"] == SUPPORT
    assert st["outgoing_configured"] is True and "{{content}}" in st["html_template"]
    bad = ms.api("PUT", "mail/settings.json", json={"mail_settings": {"html_template": "<p>no content here</p>"}})
    assert bad.status_code == 422, bad.text
    assert "{{content}}" in bad.json()["details"]["html_template"][0]["description"]
    ok = ms.api("PUT", "mail/settings.json", json={"mail_settings": {
        "html_template": "<html><body><h1>ACME</h1>{{content}}<footer>{{footer}}</footer></body></html>",
        "text_template": "{{delimiter}}\n{{content}}\n== {{footer}} ==",
        "footer": "Sent by {{from_name}} & friends"}})
    assert ok.status_code == 200, ok.text
    notify_requester_trigger(ms)
    raw, _ = message("Template check", "Hello <b>there</b>")
    ms.send(raw)
    (_, note), = sink.wait_for(lambda to, m: "dana@customer.example" in to, "with the new templates")
    assert note["From"] == f"Acme Support <{SUPPORT}>"
    text = note.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("##- Please type your reply above this line -##\nWe have your message:")
    assert text.rstrip().endswith("== Sent by Acme Support & friends ==")
    html = note.get_body(("html",)).get_content()
    assert html.startswith("<html><body><h1>ACME</h1>")
    # The customer's text is escaped in the HTML part; the footer too.
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in html and "<footer>Sent by Acme Support &amp; friends</footer>" in html
    # Agents may not read or change them.
    agent = ms.api("POST", "users.json", json={"user": {"name": "Agent", "email": "agent@opsdesk.test", "role": "agent", "password": "agent-pass-123"}})
    assert agent.status_code == 201
    assert requests.get(f"{ms.inst.url}/api/v2/mail/settings.json", auth=("agent@opsdesk.test", "agent-pass-123"), timeout=10).status_code == 403


def test_mail_waits_in_the_spool_while_postgres_is_down(instance):
    """PostgreSQL stops: the listener still answers 250 (the spool does not need the
    database), and every message becomes a ticket once the database is back."""
    if os.environ.get("OPSDESK_BACKEND", "sqlite") != "postgres":
        pytest.skip("PostgreSQL only")
    if os.geteuid() != 0 or not os.path.isdir("/etc/postgresql") or not shutil.which("pg_ctlcluster"):
        pytest.skip("needs root and pg_ctlcluster to stop the local PostgreSQL")
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    ms = MailServer(instance, None)
    first, _ = message("Before the outage", "db up")
    ms.send(first)
    ms.wait_inbound(1)
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run([*ctl, "stop"], check=True, timeout=120)
    sent = []
    try:
        for i in range(10):
            raw, msgid = message(f"During the outage {i}", "db down")
            assert ms.send(raw) == {}
            sent.append(msgid)
        spool = os.path.join(ms.inst.data_dir, "mail-spool", "new")
        assert len(os.listdir(spool)) == 10
    finally:
        subprocess.run([*ctl, "start"], check=True, timeout=120)
    # The worker backs off while the database is down (at most 30 s between tries).
    recs = ms.wait_inbound(11, "messages spooled during the outage", timeout=90)
    assert sorted(r["message_id"] for r in recs[1:]) == sorted(sent)
    assert all(r["state"] == "ticket" for r in recs)


def test_suspended_mail_can_be_reviewed_recovered_or_deleted(instance):
    """Zendesk's suspended tickets: what was held back (bulk mail here) is listed for agents,
    and one can be turned into the ticket it would have been, or dropped."""
    ms = MailServer(instance, None)
    ms.send(corpus("bulk.eml"))
    other, _ = message("Newsletter two", "More news", extra=["Precedence: bulk"])
    ms.send(other)
    ms.wait_inbound(2)
    r = ms.api("GET", "suspended_tickets.json")
    assert r.status_code == 200, r.text
    listed = r.json()["suspended_tickets"]
    assert sorted(s["subject"] for s in listed) == ["Newsletter two", "This week at Acme Cloud: 5 new regions"]
    first = next(s for s in listed if s["subject"] == "Newsletter two")
    assert first["author"]["email"] == "dana@customer.example" and first["cause"] == "bulk or list mail"
    assert "More news" in first["content"]
    r = ms.api("PUT", f"suspended_tickets/{first['id']}/recover.json")
    assert r.status_code == 200, r.text
    t = r.json()["ticket"]
    assert t["subject"] == "Newsletter two" and t["via"]["channel"] == "email"
    assert ms.api("GET", f"users/{t['requester_id']}.json").json()["user"]["email"] == "dana@customer.example"
    assert "More news" in ms.comments(t["id"])[0]["body"]
    # Recovered: no longer suspended; its record points at the ticket.
    assert ms.api("GET", f"suspended_tickets/{first['id']}.json").status_code == 404
    rec = next(x for x in ms.inbound() if x["id"] == first["id"])
    assert (rec["state"], rec["ticket_id"]) == ("ticket", t["id"])
    # The other is deleted.
    second = next(s for s in listed if s["id"] != first["id"])
    assert ms.api("DELETE", f"suspended_tickets/{second['id']}.json").status_code == 204
    assert ms.api("GET", "suspended_tickets.json").json()["suspended_tickets"] == []
    assert ms.api("PUT", f"suspended_tickets/{second['id']}/recover.json").status_code == 404
