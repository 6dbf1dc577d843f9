"""Zendesk's error envelopes, checked with raw HTTP, and what zenpy makes of them."""

import pytest
import requests
from zenpy import Zenpy
from zenpy.lib.exception import APIException, RecordNotFoundException


def test_missing_ticket_is_404_record_not_found(admin_session, api_url):
    r = admin_session.get(f"{api_url}/tickets/999999.json")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_missing_records_raise_record_not_found_in_zenpy(admin_client):
    # zenpy maps {"error": "RecordNotFound"} to RecordNotFoundException.
    with pytest.raises(RecordNotFoundException):
        admin_client.tickets(id=999999)
    with pytest.raises(RecordNotFoundException):
        admin_client.users(id=999999)
    with pytest.raises(RecordNotFoundException):
        admin_client.organizations(id=999999)


def test_malformed_json_is_400(admin_session, api_url):
    r = admin_session.post(
        f"{api_url}/tickets.json",
        data=b'{"ticket": {"subject": "broken"',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]


def test_ticket_without_comment_is_422_record_invalid(admin_session, api_url):
    r = admin_session.post(f"{api_url}/tickets.json", json={"ticket": {"subject": "No comment"}})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "RecordInvalid"
    assert body["description"] == "Record validation errors"
    assert "description" in body["details"]
    detail = body["details"]["description"]
    assert isinstance(detail, list) and detail
    assert detail[0]["description"]
    assert detail[0]["error"]


def test_zenpy_raises_api_exception_for_422(admin_client):
    from zenpy.lib.api_objects import Ticket

    with pytest.raises(APIException) as excinfo:
        admin_client.tickets.create(Ticket(subject="No comment either"))
    assert not isinstance(excinfo.value, RecordNotFoundException)
    assert excinfo.value.response.status_code == 422
    assert excinfo.value.response.json()["error"] == "RecordInvalid"


def test_wrong_password_is_401(api_url, accounts):
    r = requests.get(f"{api_url}/users/me.json", auth=(accounts.admin.email, "not-the-password"), timeout=30)
    assert r.status_code == 401


def test_wrong_token_is_401(api_url, accounts):
    r = requests.get(f"{api_url}/users/me.json", auth=(f"{accounts.admin.email}/token", "not-a-token"),
                     timeout=30)
    assert r.status_code == 401


def test_token_of_another_user_is_401(api_url, accounts, admin_token):
    # An API token authenticates only together with the email of the user who owns it.
    r = requests.get(f"{api_url}/users/me.json", auth=(f"{accounts.agent.email}/token", admin_token),
                     timeout=30)
    assert r.status_code == 401


def test_missing_credentials_is_401(anon_session, api_url):
    assert anon_session.get(f"{api_url}/tickets.json").status_code == 401


def test_zenpy_with_wrong_password_raises(server, accounts):
    client = Zenpy(subdomain="x", email=accounts.agent.email, password="wrong", disable_cache=True)
    with pytest.raises((APIException, requests.HTTPError)) as excinfo:
        client.users.me()
    assert excinfo.value.response.status_code == 401


def test_password_and_token_both_work_for_the_same_api(admin_session, api_url, accounts):
    by_token = admin_session.get(f"{api_url}/users/me.json")
    by_password = requests.get(f"{api_url}/users/me.json",
                               auth=(accounts.admin.email, accounts.admin.password), timeout=30)
    assert by_token.status_code == by_password.status_code == 200
    assert by_token.json()["user"]["id"] == by_password.json()["user"]["id"]
    assert by_token.json()["user"]["email"] == accounts.admin.email
