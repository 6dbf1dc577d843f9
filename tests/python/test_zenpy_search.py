"""Search and incremental exports through zenpy: its search() keyword builder, search.count,
search_export's cursor, and both incremental forms (time-based and cursor) for tickets and
users, against the real server (started with --export-hold-back 2)."""

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from zenpy.lib.api_objects import Comment, Ticket, User
from zenpy.lib.exception import APIException

HOLD_BACK = 2  # seconds; conftest starts the server with --export-hold-back 2


def word():
    """A search word no other test uses (letters only, so it is one token)."""
    return "zq" + "".join(c for c in uuid.uuid4().hex if c.isalpha())[:8]


@pytest.fixture(scope="module")
def corpus(admin_client):
    w = word()
    created = []
    for i, (status, tags, priority) in enumerate(
        [
            ("open", ["alpha"], "high"),
            ("pending", ["alpha", "beta"], "low"),
            ("solved", ["beta"], "urgent"),
            ("open", [], None),
            ("new", ["gamma"], "normal"),
        ]
    ):
        # POST /api/v2/tickets.json
        audit = admin_client.tickets.create(
            Ticket(
                subject=f"{w} printer {i}",
                comment=Comment(body=f"case {i}: the {w} toner is empty"),
                status=status,
                tags=tags,
                priority=priority,
            )
        )
        created.append(audit.ticket)
    # Every ticket gets a later internal note with a second word.
    note = word()
    for t in created[:2]:
        t.comment = Comment(body=f"internal {note}", public=False)
        admin_client.tickets.update(t)
    return {"word": w, "note": note, "tickets": created}


def ids(results):
    return sorted(r.id for r in results)


def test_free_text_and_keywords(admin_client, corpus):
    w = corpus["word"]
    all_ids = sorted(t.id for t in corpus["tickets"])
    # GET /api/v2/search.json?query=<w> type:ticket&filter[type]=ticket
    assert ids(admin_client.search(w, type="ticket")) == all_ids
    # A prefix of the word finds the same tickets (Zendesk: "top" finds "Toppings").
    assert ids(admin_client.search(w[:6], type="ticket")) == all_ids
    # query=<w> type:ticket status:open
    open_ids = [t.id for t in corpus["tickets"] if t.status == "open"]
    assert ids(admin_client.search(w, type="ticket", status="open")) == sorted(open_ids)
    # query=<w> type:ticket status<solved
    want = [t.id for t in corpus["tickets"] if t.status in ("new", "open", "pending")]
    assert ids(admin_client.search(w, type="ticket", status_less_than="solved")) == sorted(want)
    # query=<w> type:ticket tags:"alpha" tags:"gamma"  (zenpy's list form: either tag)
    want = [t.id for t in corpus["tickets"] if {"alpha", "gamma"} & set(t.tags)]
    assert ids(admin_client.search(w, type="ticket", tags=["alpha", "gamma"])) == sorted(want)
    # query=<w> type:ticket -tags:beta
    want = [t.id for t in corpus["tickets"] if "beta" not in t.tags]
    assert ids(admin_client.search(w, type="ticket", minus="tags:beta")) == sorted(want)
    # query=<w> type:ticket priority>normal
    want = [t.id for t in corpus["tickets"] if t.priority in ("high", "urgent")]
    assert ids(admin_client.search(w, type="ticket", priority_greater_than="normal")) == sorted(want)
    # The internal note's word is found by agents through comment:
    note_ids = sorted(t.id for t in corpus["tickets"][:2])
    assert ids(admin_client.search(type="ticket", comment=corpus["note"])) == note_ids
    # created>... with zenpy's ISO-8601 datetime
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    assert ids(admin_client.search(w, type="ticket", created_after=since)) == all_ids
    assert ids(admin_client.search(w, type="ticket", created_before=since)) == []


def test_counts_sorting_and_export(admin_client, corpus):
    w = corpus["word"]
    # GET /api/v2/search/count.json?query=<w> type:ticket
    assert admin_client.search.count(w, type="ticket") == len(corpus["tickets"])
    # sort_by / sort_order travel as parameters
    got = [r.id for r in admin_client.search(w, type="ticket", sort_by="created_at", sort_order="asc")]
    assert got == [t.id for t in corpus["tickets"]]
    # GET /api/v2/search/export.json?query=<w> type:ticket&filter[type]=ticket&page[size]=2
    got = [r.id for r in admin_client.search_export(w, type="ticket", cursor_pagination=2)]
    assert got == [t.id for t in reversed(corpus["tickets"])]


def test_unreadable_query_is_a_422(admin_client):
    with pytest.raises(APIException) as e:
        list(admin_client.search("status:opne", type="ticket"))
    assert "not a ticket status" in str(e.value)


def test_end_user_finds_only_own_tickets(admin_client, end_user_client, corpus):
    # The corpus belongs to the admin; the customer's search does not see it.
    assert list(end_user_client.search(corpus["word"], type="ticket")) == []


def test_incremental_tickets_both_forms(admin_client, corpus):
    start = int(time.time()) - 600
    time.sleep(HOLD_BACK + 1.1)
    want = {t.id for t in corpus["tickets"]}
    # Cursor form: GET /api/v2/incremental/tickets/cursor.json?start_time=..., then ?cursor=
    # (On PostgreSQL a change waits for older write transactions in the cluster to end: an ETL
    # job polls again, so this does too, a bounded number of times.)
    for _ in range(50):
        seen = [t.id for t in admin_client.tickets.incremental(start_time=start, per_page=2)]
        if want <= set(seen):
            break
        time.sleep(0.2)
    assert want <= set(seen)
    assert len(seen) == len(set(seen)), "a cursor export delivers each change once"
    # Time-based form: GET /api/v2/incremental/tickets.json?start_time=... following next_page
    seen = [t.id for t in admin_client.tickets.incremental(start_time=start, paginate_by_time=True)]
    assert want <= set(seen)
    assert len(seen) == len(set(seen))


def test_incremental_users_cursor(admin_client):
    start = int(time.time()) - 5
    email = f"{word()}@example.org"
    # POST /api/v2/users.json
    u = admin_client.users.create(User(name="Incremental Person", email=email))
    for _ in range(50):
        seen = [x.id for x in admin_client.users.incremental(start_time=start)]
        if u.id in seen:
            break
        time.sleep(0.2)
    assert u.id in seen
