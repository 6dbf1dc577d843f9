"""What an end-user sees: the Requests API shows their own tickets and public comments only;
the Tickets API is closed to them (Zendesk answers 403)."""

import uuid
from types import SimpleNamespace

import pytest
import requests
from zenpy.lib.api_objects import Comment, Request, Ticket, User
from zenpy.lib.exception import APIException


def _suffix():
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def customer_ticket(admin_client, end_user):
    """A ticket of the end-user with a public reply and an internal note from the admin."""
    s = _suffix()
    subject = f"Cannot log in {s}"
    first = f"I cannot log in ({s})."
    reply = f"Please reset your password ({s})."
    note = f"Internal: SSO misconfigured again ({s})."
    ticket = admin_client.tickets.create(
        Ticket(subject=subject, comment=Comment(body=first), requester_id=end_user.id)).ticket
    t = admin_client.tickets(id=ticket.id)
    t.status = "open"
    t.comment = Comment(body=reply, public=True)
    admin_client.tickets.update(t)
    t = admin_client.tickets(id=ticket.id)
    t.comment = Comment(body=note, public=False)
    admin_client.tickets.update(t)
    return SimpleNamespace(id=ticket.id, subject=subject, first=first, reply=reply, note=note)


@pytest.fixture(scope="module")
def someone_elses_ticket(admin_client):
    other = admin_client.users.create(
        User(name="Other Customer", email=f"other-{_suffix()}@example.com", role="end-user"))
    return admin_client.tickets.create(
        Ticket(subject=f"Not yours {_suffix()}", comment=Comment(body="private matter"),
               requester_id=other.id)).ticket


def test_end_user_lists_own_requests(end_user_client, end_user, customer_ticket, someone_elses_ticket):
    # GET /api/v2/requests.json
    mine = {r.id: r for r in end_user_client.requests()}
    assert customer_ticket.id in mine
    assert someone_elses_ticket.id not in mine
    assert all(r.requester_id == end_user.id for r in mine.values())
    req = mine[customer_ticket.id]
    assert isinstance(req, Request)
    assert req.subject == customer_ticket.subject
    assert req.description == customer_ticket.first
    assert req.status == "open"

    # GET /api/v2/requests/{id}.json
    shown = end_user_client.requests(id=customer_ticket.id)
    assert (shown.id, shown.subject) == (customer_ticket.id, customer_ticket.subject)


def test_end_user_cannot_see_someone_elses_request(end_user_client, someone_elses_ticket):
    with pytest.raises(APIException) as excinfo:
        end_user_client.requests(id=someone_elses_ticket.id)
    assert excinfo.value.response.status_code in (403, 404)


def test_end_user_sees_public_comments_only(end_user_client, customer_ticket):
    # GET /api/v2/requests/{id}/comments.json  (zenpy needs a "comments" key)
    comments = list(end_user_client.requests.comments(customer_ticket.id))
    bodies = [c.body for c in comments]
    assert bodies == [customer_ticket.first, customer_ticket.reply]
    assert customer_ticket.note not in bodies
    assert all(c.public is not False for c in comments)


def test_end_user_is_forbidden_on_tickets_api(end_user_client, server, accounts, customer_ticket):
    # GET /api/v2/tickets/{id}.json as an end-user: Zendesk answers 403 with a JSON error.
    with pytest.raises(APIException) as excinfo:
        end_user_client.tickets(id=customer_ticket.id)
    assert excinfo.value.response.status_code == 403

    r = requests.get(f"{server.base_url}/api/v2/tickets.json",
                     auth=(accounts.end_user.email, accounts.end_user.password), timeout=30)
    assert r.status_code == 403
    assert r.json()["error"]


def test_end_user_comments_through_zenpy(end_user_client, admin_client, end_user, customer_ticket):
    body = f"Thanks, resetting now ({_suffix()})."
    req = end_user_client.requests(id=customer_ticket.id)
    req.comment = Comment(body=body)
    # PUT /api/v2/requests/{id}.json {"request": {"id", "comment": {"body"}}}
    updated = end_user_client.requests.update(req)
    assert isinstance(updated, Request)
    assert updated.id == customer_ticket.id

    last = list(admin_client.tickets.comments(ticket=customer_ticket.id))[-1]
    assert (last.body, last.public, last.author_id) == (body, True, end_user.id)
    assert [c.body for c in end_user_client.requests.comments(customer_ticket.id)][-1] == body


def test_end_user_comments_with_raw_put(server, accounts, admin_client, end_user, customer_ticket):
    body = f"Still broken ({_suffix()})."
    r = requests.put(
        f"{server.base_url}/api/v2/requests/{customer_ticket.id}.json",
        json={"request": {"comment": {"body": body}}},
        auth=(accounts.end_user.email, accounts.end_user.password),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["request"]["id"] == customer_ticket.id

    last = list(admin_client.tickets.comments(ticket=customer_ticket.id))[-1]
    assert (last.body, last.public, last.author_id) == (body, True, end_user.id)


def test_end_user_opens_a_request(end_user_client, admin_client, end_user):
    subject = f"New request {_suffix()}"
    # POST /api/v2/requests.json {"request": {"subject", "comment": {"body"}}}
    created = end_user_client.requests.create(Request(subject=subject, comment=Comment(body="Help!")))
    assert isinstance(created, Request)
    assert created.subject == subject
    assert created.requester_id == end_user.id

    ticket = admin_client.tickets(id=created.id)
    assert ticket.subject == subject
    assert ticket.description == "Help!"
    assert ticket.requester_id == end_user.id
    assert ticket.submitter_id == end_user.id
    assert ticket.status == "new"
