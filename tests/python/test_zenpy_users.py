"""Users through zenpy: create, show, update, search, me, create_or_update, delete."""

from datetime import datetime

import pytest
from zenpy.lib.api_objects import User
from zenpy.lib.exception import APIException


def _parse_time(value):
    assert isinstance(value, str) and value, f"expected an ISO-8601 timestamp, got {value!r}"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_and_show_user(admin_client, unique_email):
    email = unique_email("grace")
    # POST /api/v2/users.json {"user": {"name", "email", "role"}}
    created = admin_client.users.create(User(name="Grace Hopper", email=email, role="end-user"))
    assert isinstance(created, User)
    assert isinstance(created.id, int) and created.id > 0
    assert created.name == "Grace Hopper"
    assert created.email == email
    assert created.role == "end-user"
    assert _parse_time(created.created_at).tzinfo is not None

    # GET /api/v2/users/{id}.json
    shown = admin_client.users(id=created.id)
    assert isinstance(shown, User)
    assert shown.id == created.id
    assert shown.name == "Grace Hopper"
    assert shown.email == email
    assert shown.role == "end-user"
    assert shown.created_at == created.created_at
    assert shown.active is True
    assert shown.url.endswith(f"/api/v2/users/{created.id}.json")


def test_update_user_name(admin_client, unique_email):
    user = admin_client.users.create(User(name="Old Name", email=unique_email("rename"), role="end-user"))
    user.name = "New Name"
    # PUT /api/v2/users/{id}.json {"user": {"id", "name"}}
    updated = admin_client.users.update(user)
    assert isinstance(updated, User)
    assert updated.id == user.id
    assert updated.name == "New Name"
    assert admin_client.users(id=user.id).name == "New Name"


def test_search_users_by_email(admin_client, unique_email):
    email = unique_email("findme")
    user = admin_client.users.create(User(name="Find Me", email=email, role="end-user"))
    admin_client.users.create(User(name="Someone Else", email=unique_email("other"), role="end-user"))

    # GET /api/v2/users/search.json?query=email%3A...  (zenpy passes query as a requests param)
    found = list(admin_client.users.search(query=f"email:{email}"))
    assert [u.id for u in found] == [user.id]
    assert found[0].email == email
    assert found[0].name == "Find Me"


def test_search_api_finds_user_by_email(admin_client, unique_email):
    email = unique_email("searchapi")
    user = admin_client.users.create(User(name="Search Api", email=email, role="end-user"))
    # GET /api/v2/search.json?query=type%3Auser%20email%3A...&filter[type]=user
    # zenpy's SearchResultGenerator needs "results" with a "result_type" on every result.
    results = list(admin_client.search(type="user", email=email))
    assert [(type(r).__name__, r.id) for r in results] == [("User", user.id)]


def test_users_me(admin_client, agent_client, end_user_client, accounts):
    # GET /api/v2/users/me.json
    me = admin_client.users.me()
    assert isinstance(me, User)
    assert me.email == accounts.admin.email
    assert me.name == accounts.admin.name
    assert me.role == "admin"

    agent = agent_client.users.me()
    assert (agent.email, agent.name, agent.role) == (accounts.agent.email, accounts.agent.name, "agent")
    customer = end_user_client.users.me()
    assert (customer.email, customer.name, customer.role) == (
        accounts.end_user.email, accounts.end_user.name, "end-user")
    assert len({me.id, agent.id, customer.id}) == 3


def test_create_or_update_existing_user_by_email(admin_client, unique_email):
    email = unique_email("upsert")
    original = admin_client.users.create(User(name="Before Upsert", email=email, role="end-user"))

    # POST /api/v2/users/create_or_update.json {"user": {"email", "name"}}
    upserted = admin_client.users.create_or_update(User(email=email, name="After Upsert"))
    assert isinstance(upserted, User)
    assert upserted.id == original.id
    assert upserted.name == "After Upsert"
    assert upserted.email == email
    assert admin_client.users(id=original.id).name == "After Upsert"

    fresh_email = unique_email("upsert-new")
    created = admin_client.users.create_or_update(User(email=fresh_email, name="Brand New"))
    assert created.id != original.id
    assert created.email == fresh_email
    assert created.role == "end-user"


def test_delete_user(admin_client, unique_email):
    email = unique_email("deleteme")
    user = admin_client.users.create(User(name="Delete Me", email=email, role="end-user"))

    # DELETE /api/v2/users/{id}.json  (zenpy sends a JSON body {"user": {"id", "name"}} with it)
    deleted = admin_client.users.delete(user)
    assert isinstance(deleted, User)
    assert deleted.id == user.id
    assert deleted.active is False

    # Zendesk soft-deletes: afterwards the user is either gone (404) or shown as inactive.
    try:
        after = admin_client.users(id=user.id)
    except APIException as e:
        assert e.response.status_code == 404
    else:
        assert after.id == user.id
        assert after.active is False


def test_users_create_needs_a_name(admin_client, unique_email):
    with pytest.raises(APIException) as excinfo:
        admin_client.users.create(User(email=unique_email("noname"), role="end-user"))
    assert excinfo.value.response.status_code == 422
    assert excinfo.value.response.json()["error"] == "RecordInvalid"
