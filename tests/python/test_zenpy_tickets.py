"""Tickets through zenpy: create, show, update with comments, audits, tags, show_many,
create_many with a job status, delete."""

import time
import uuid
from datetime import datetime
from types import SimpleNamespace

import pytest
import requests
from zenpy.lib.api_objects import Audit, Comment, JobStatus, Ticket, TicketAudit, User
from zenpy.lib.exception import APIException, RecordNotFoundException

JOB_TIMEOUT = 30.0
JOB_STEP = 0.1


def _suffix():
    return uuid.uuid4().hex[:10]


def _parse_time(value):
    assert isinstance(value, str) and value, f"expected an ISO-8601 timestamp, got {value!r}"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _events(audit, type_):
    return [e for e in audit.events if e["type"] == type_]


def _change(audit, field):
    changes = [e for e in _events(audit, "Change") if e.get("field_name") == field]
    assert len(changes) == 1, f"expected one Change of {field} in {list(audit.events)}"
    return changes[0]


def _create(client, **fields):
    """POST /api/v2/tickets.json; Zendesk answers {"ticket", "audit"}, which zenpy turns into
    a TicketAudit."""
    result = client.tickets.create(Ticket(**fields))
    assert isinstance(result, TicketAudit), f"expected ticket and audit in the answer, got {result!r}"
    assert isinstance(result.ticket, Ticket)
    assert isinstance(result.audit, Audit)
    return result


@pytest.fixture(scope="module")
def worked_ticket(admin_client, agent_client, admin_user, agent_user, end_user):
    """One ticket taken through create, read, assign+open with a public reply, internal note."""
    s = _suffix()
    subject = f"Printer on fire {s}"
    first = f"The printer is on fire ({s})."
    reply = f"We are sending someone ({s})."
    note = f"Internal: check the toner supplier ({s})."

    created = _create(
        admin_client,
        subject=subject,
        comment=Comment(body=first),
        priority="high",
        type="incident",
        requester_id=end_user.id,
        tags=["printer", "fire"],
    )
    ticket_id = created.ticket.id
    # GET /api/v2/tickets/{id}.json
    shown_after_create = admin_client.tickets(id=ticket_id)

    to_update = admin_client.tickets(id=ticket_id)
    to_update.assignee_id = agent_user.id
    to_update.status = "open"
    to_update.comment = Comment(body=reply, public=True)
    # PUT /api/v2/tickets/{id}.json {"ticket": {"id", "assignee_id", "status", "comment"}}
    updated = admin_client.tickets.update(to_update)

    to_note = agent_client.tickets(id=ticket_id)
    to_note.comment = Comment(body=note, public=False)
    noted = agent_client.tickets.update(to_note)

    return SimpleNamespace(
        id=ticket_id, subject=subject, first=first, reply=reply, note=note,
        created=created, shown_after_create=shown_after_create, updated=updated, noted=noted,
        admin_id=admin_user.id, agent_id=agent_user.id, end_user_id=end_user.id,
    )


def test_create_returns_ticket_and_audit(worked_ticket):
    w = worked_ticket
    ticket = w.created.ticket
    assert isinstance(ticket.id, int) and ticket.id > 0
    assert ticket.subject == w.subject
    assert ticket.status == "new"
    assert ticket.url.endswith(f"/api/v2/tickets/{ticket.id}.json")

    audit = w.created.audit
    assert audit.ticket_id == ticket.id
    assert audit.author_id == w.admin_id
    comments = _events(audit, "Comment")
    assert [(c["body"], c["public"]) for c in comments] == [(w.first, True)]
    created_fields = {e["field_name"]: e["value"] for e in _events(audit, "Create")}
    assert created_fields["subject"] == w.subject
    assert created_fields["status"] == "new"
    assert created_fields["priority"] == "high"


def test_show_ticket_after_create(worked_ticket):
    w = worked_ticket
    t = w.shown_after_create
    assert isinstance(t, Ticket)
    assert t.id == w.id
    assert t.subject == w.subject
    assert t.description == w.first
    assert t.status == "new"
    assert t.priority == "high"
    assert t.type == "incident"
    assert t.requester_id == w.end_user_id
    assert t.submitter_id == w.admin_id
    assert t.assignee_id is None
    assert set(t.tags) == {"printer", "fire"}
    created_at = _parse_time(t.created_at)
    assert created_at.tzinfo is not None
    assert _parse_time(t.updated_at) >= created_at


def test_update_assigns_opens_and_replies(worked_ticket):
    w = worked_ticket
    assert isinstance(w.updated, TicketAudit)
    t = w.updated.ticket
    assert t.id == w.id
    assert t.status == "open"
    assert t.assignee_id == w.agent_id
    assert t.priority == "high"  # untouched fields survive a partial update
    assert t.subject == w.subject

    audit = w.updated.audit
    assert audit.ticket_id == w.id
    assert audit.author_id == w.admin_id
    status = _change(audit, "status")
    assert (status["value"], status["previous_value"]) == ("open", "new")
    assert str(_change(audit, "assignee_id")["value"]) == str(w.agent_id)
    assert [(c["body"], c["public"]) for c in _events(audit, "Comment")] == [(w.reply, True)]


def test_internal_note(worked_ticket):
    w = worked_ticket
    assert isinstance(w.noted, TicketAudit)
    assert w.noted.ticket.status == "open"
    audit = w.noted.audit
    assert audit.author_id == w.agent_id
    assert [(c["body"], c["public"]) for c in _events(audit, "Comment")] == [(w.note, False)]
    assert _events(audit, "Change") == []


def test_list_comments(admin_client, worked_ticket):
    w = worked_ticket
    # GET /api/v2/tickets/{id}/comments.json?include_inline_images=false&page[size]=100
    comments = list(admin_client.tickets.comments(ticket=w.id))
    assert all(isinstance(c, Comment) for c in comments)
    assert [c.body for c in comments] == [w.first, w.reply, w.note]
    assert [c.public for c in comments] == [True, True, False]
    assert [c.author_id for c in comments] == [w.admin_id, w.admin_id, w.agent_id]
    assert len({c.id for c in comments}) == 3
    assert all(c.created_at for c in comments)


def test_list_audits(admin_client, worked_ticket):
    w = worked_ticket
    # GET /api/v2/tickets/{id}/audits.json?include=None&page[size]=100
    audits = list(admin_client.tickets.audits(ticket=w.id))
    assert len(audits) == 3
    assert all(isinstance(a, Audit) for a in audits)
    assert [a.ticket_id for a in audits] == [w.id] * 3
    assert [a.author_id for a in audits] == [w.admin_id, w.admin_id, w.agent_id]
    assert audits[0].id == w.created.audit.id

    create_audit, update_audit, note_audit = audits
    assert {e["field_name"] for e in _events(create_audit, "Create")} >= {"subject", "status", "priority"}
    assert [c["body"] for c in _events(create_audit, "Comment")] == [w.first]

    status = _change(update_audit, "status")
    assert (status["value"], status["previous_value"]) == ("open", "new")
    assert [(c["body"], c["public"]) for c in _events(update_audit, "Comment")] == [(w.reply, True)]

    assert [(c["body"], c["public"]) for c in _events(note_audit, "Comment")] == [(w.note, False)]


def test_ticket_shows_current_state(admin_client, worked_ticket):
    w = worked_ticket
    t = admin_client.tickets(id=w.id)
    assert t.status == "open"
    assert t.assignee_id == w.agent_id
    assert t.description == w.first  # description stays the first comment
    assert _parse_time(t.updated_at) >= _parse_time(t.created_at)


def test_tags(admin_client, end_user):
    ticket_id = _create(
        admin_client, subject=f"Tags {_suffix()}", comment=Comment(body="tag me"),
        requester_id=end_user.id, tags=["alpha"],
    ).ticket.id

    # PUT /api/v2/tickets/{id}/tags.json {"tags": [...]}  -> {"tags": all tags now}
    assert sorted(admin_client.tickets.add_tags(ticket_id, ["beta", "gamma"])) == ["alpha", "beta", "gamma"]
    # POST /api/v2/tickets/{id}/tags.json {"tags": [...]}  -> replaces them
    assert sorted(admin_client.tickets.set_tags(ticket_id, ["delta", "epsilon"])) == ["delta", "epsilon"]
    # DELETE /api/v2/tickets/{id}/tags.json {"tags": [...]}  (a DELETE with a JSON body)
    removed = admin_client.tickets.delete_tags(ticket_id, ["delta"])
    if isinstance(removed, requests.Response):  # 204 No Content
        assert removed.status_code in (200, 204)
    else:
        assert sorted(removed) == ["epsilon"]
    # GET /api/v2/tickets/{id}/tags.json?page[size]=100
    assert sorted(admin_client.tickets.tags(ticket_id)) == ["epsilon"]
    assert list(admin_client.tickets(id=ticket_id).tags) == ["epsilon"]


def test_show_many(admin_client, end_user):
    s = _suffix()
    a = _create(admin_client, subject=f"Many A {s}", comment=Comment(body="a"), requester_id=end_user.id).ticket
    b = _create(admin_client, subject=f"Many B {s}", comment=Comment(body="b"), requester_id=end_user.id).ticket
    # GET /api/v2/tickets/show_many.json?ids=A,B
    found = {t.id: t.subject for t in admin_client.tickets(ids=[a.id, b.id])}
    assert found == {a.id: f"Many A {s}", b.id: f"Many B {s}"}


def test_create_many_returns_job_status(admin_client, end_user):
    s = _suffix()
    subjects = [f"Bulk one {s}", f"Bulk two {s}"]
    # POST /api/v2/tickets/create_many.json {"tickets": [...]}  -> {"job_status": {...}}
    job = admin_client.tickets.create([
        Ticket(subject=subj, comment=Comment(body=f"body of {subj}"), requester_id=end_user.id)
        for subj in subjects
    ])
    assert isinstance(job, JobStatus)
    assert job.id
    assert job.status in ("queued", "working", "completed")
    assert job.url.endswith(f"/api/v2/job_statuses/{job.id}.json")

    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        # GET /api/v2/job_statuses/{id}.json
        job = admin_client.job_status(id=job.id)
        assert isinstance(job, JobStatus)
        assert job.status in ("queued", "working", "completed"), f"job failed: {job.to_dict()}"
        if job.status == "completed":
            break
        assert time.monotonic() < deadline, f"job not completed after {JOB_TIMEOUT}s: {job.to_dict()}"
        time.sleep(JOB_STEP)

    assert job.total == 2
    assert job.progress == 2
    results = sorted(job.results, key=lambda r: r.index)
    assert [r.index for r in results] == [0, 1]
    ids = [r.id for r in results]
    assert all(isinstance(i, int) for i in ids)
    assert {t.id: t.subject for t in admin_client.tickets(ids=ids)} == dict(zip(ids, subjects))
    for ticket_id, subj in zip(ids, subjects):
        assert admin_client.tickets(id=ticket_id).description == f"body of {subj}"


def test_delete_ticket(admin_client, admin_session, api_url, end_user):
    ticket = _create(admin_client, subject=f"Delete {_suffix()}", comment=Comment(body="bye"),
                     requester_id=end_user.id).ticket
    # DELETE /api/v2/tickets/{id}.json (zenpy sends {"ticket": {"id"}} as the body); Zendesk: 204
    response = admin_client.tickets.delete(ticket)
    assert isinstance(response, requests.Response)
    assert response.status_code == 204

    with pytest.raises(RecordNotFoundException) as excinfo:
        admin_client.tickets(id=ticket.id)
    assert excinfo.value.response.status_code == 404
    assert admin_session.get(f"{api_url}/tickets/{ticket.id}.json").status_code == 404


def test_readme_example_creates_requester_from_email(admin_client, unique_email):
    """zenpy's README: Ticket(description=..., requester=User(name, email)) — Zendesk takes
    `description` as the first comment and finds or creates the requester by email."""
    email = unique_email("bob")
    result = _create(
        admin_client,
        subject=f"Readme {_suffix()}",
        description="Some description",
        requester=User(name="Bob Requester", email=email),
    )
    ticket = admin_client.tickets(id=result.ticket.id)
    assert ticket.description == "Some description"
    requester = admin_client.users(id=ticket.requester_id)
    assert (requester.email, requester.name, requester.role) == (email, "Bob Requester", "end-user")

    # A second ticket for the same email reuses that user.
    again = _create(admin_client, subject=f"Readme again {_suffix()}", description="Again",
                    requester=User(name="Bob Requester", email=email))
    assert again.ticket.requester_id == ticket.requester_id


def test_agent_gets_api_exception_for_unknown_ticket(agent_client):
    with pytest.raises(APIException) as excinfo:
        agent_client.tickets(id=987654321)
    assert isinstance(excinfo.value, RecordNotFoundException)
