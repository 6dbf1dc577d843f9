"""Offset pagination (page/per_page, next_page as a full URL) and cursor pagination
(page[size], meta.has_more, links.next), raw and through zenpy's generators."""

import urllib.parse
import uuid

import pytest
from zenpy.lib.api_objects import User

MAX_PAGES = 500  # bound on every page walk


@pytest.fixture(scope="module")
def five_users(admin_client):
    tag = uuid.uuid4().hex[:10]
    return [
        admin_client.users.create(User(name=f"Page User {i}", email=f"page-{tag}-{i}@example.com",
                                       role="end-user")).id
        for i in range(5)
    ]


def _walk_offset(session, url):
    pages = []
    while url is not None:
        assert len(pages) < MAX_PAGES, "next_page never ran out"
        r = session.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        url = body["next_page"]
    return pages


def _walk_cursor(session, url):
    pages = []
    while True:
        assert len(pages) < MAX_PAGES, "meta.has_more never turned false"
        r = session.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        if not body["meta"]["has_more"]:
            return pages
        url = body["links"]["next"]


def test_offset_pagination(admin_session, api_url, base_url, five_users):
    first = admin_session.get(f"{api_url}/users.json", params={"per_page": 2})
    assert first.status_code == 200
    body = first.json()
    assert len(body["users"]) == 2
    assert body["count"] >= len(five_users) + 3
    assert body["previous_page"] is None
    next_page = body["next_page"]
    assert isinstance(next_page, str)
    assert next_page.startswith(f"{base_url}/api/v2/users")  # a full URL, not a path
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(next_page).query)
    assert query["page"] == ["2"]
    assert query["per_page"] == ["2"]

    second = admin_session.get(next_page)
    assert second.status_code == 200
    second_body = second.json()
    assert len(second_body["users"]) == 2
    assert second_body["previous_page"].startswith(f"{base_url}/api/v2/users")
    assert not {u["id"] for u in body["users"]} & {u["id"] for u in second_body["users"]}

    pages = _walk_offset(admin_session, f"{api_url}/users.json?per_page=2")
    ids = [u["id"] for p in pages for u in p["users"]]
    assert len(ids) == len(set(ids)) == body["count"]
    assert set(five_users) <= set(ids)
    assert all(len(p["users"]) == 2 for p in pages[:-1])


def test_cursor_pagination(admin_session, api_url, base_url, five_users):
    # requests (urllib3) percent-encodes the brackets on the wire: page%5Bsize%5D=2. zenpy goes
    # through requests too, so that is exactly what it sends for its default page[size]=100.
    first = admin_session.get(f"{api_url}/users.json?page[size]=2")
    assert first.status_code == 200
    body = first.json()
    assert len(body["users"]) == 2
    assert body["meta"]["has_more"] is True
    assert body["meta"]["after_cursor"]
    next_url = body["links"]["next"]
    assert next_url.startswith(f"{base_url}/api/v2/users")

    # The same request built from params (also encoded) gives the same page.
    encoded = admin_session.get(f"{api_url}/users.json", params={"page[size]": 2}).json()
    assert [u["id"] for u in encoded["users"]] == [u["id"] for u in body["users"]]

    second = admin_session.get(next_url).json()
    assert len(second["users"]) >= 1
    assert not {u["id"] for u in body["users"]} & {u["id"] for u in second["users"]}

    pages = _walk_cursor(admin_session, f"{api_url}/users.json?page[size]=2")
    ids = [u["id"] for p in pages for u in p["users"]]
    assert len(ids) == len(set(ids))
    assert set(five_users) <= set(ids)
    assert all(p["meta"]["has_more"] for p in pages[:-1])


def test_zenpy_follows_cursor_pages(admin_client, five_users):
    # GET /api/v2/users.json?page[size]=2, then each links.next until meta.has_more is false
    ids = [u.id for u in admin_client.users(cursor_pagination=2)]
    assert len(ids) == len(set(ids))
    assert set(five_users) <= set(ids)


def test_zenpy_default_listing_sees_everyone(admin_client, five_users, admin_user, agent_user, end_user):
    # GET /api/v2/users.json?page[size]=100
    ids = {u.id for u in admin_client.users()}
    assert set(five_users) | {admin_user.id, agent_user.id, end_user.id} <= ids
