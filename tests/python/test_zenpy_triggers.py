"""Triggers through zenpy: an admin creates one and sees it fire on a new ticket; the audit
names the trigger, and the opsdesk rule trace explains it."""

import uuid

import pytest
from zenpy.lib.api_objects import Comment, Ticket, Trigger
from zenpy.lib.exception import APIException


def test_trigger_created_with_zenpy_fires_on_a_new_ticket(admin_client, admin_session, api_url):
    tag = "zenpy_" + uuid.uuid4().hex[:8]
    # POST /api/v2/triggers.json {"trigger": {...}}
    trig = admin_client.triggers.create(
        Trigger(
            title=f"Urgent for {tag}",
            conditions={
                "all": [
                    {"field": "update_type", "operator": "is", "value": "Create"},
                    {"field": "current_tags", "operator": "includes", "value": tag},
                ],
                "any": [],
            },
            actions=[
                {"field": "priority", "value": "urgent"},
                {"field": "current_tags", "value": "triaged"},
            ],
        )
    )
    assert trig.id and trig.title == f"Urgent for {tag}"
    assert trig.active is True
    try:
        audit = admin_client.tickets.create(Ticket(subject="Disk full", comment=Comment(body="the disk is full"), tags=[tag]))
        ticket = audit.ticket
        assert ticket.priority == "urgent"
        assert sorted(ticket.tags) == sorted([tag, "triaged"])
        changes = [e for e in audit.audit.events if e.get("type") == "Change"]
        assert {e["field_name"] for e in changes} == {"priority", "tags"}
        assert all(e["via"]["source"]["from"]["id"] == trig.id for e in changes)
        # A ticket without the tag is left alone, and the trace says why.
        other = admin_client.tickets.create(Ticket(subject="Other", comment=Comment(body="x"))).ticket
        assert other.priority is None
        trace = admin_session.get(f"{api_url}/tickets/{other.id}/rule_trace.json").json()["rule_traces"][0]["trigger_trace"]
        mine = [n for n in trace["not_fired"] if n["id"] == trig.id]
        assert mine == [{"id": trig.id, "title": f"Urgent for {tag}", "failed": f'all[1]: current_tags includes "{tag}"'}]
        # Listing through zenpy sees it.
        assert trig.id in [t.id for t in admin_client.triggers()]
    finally:
        admin_client.triggers.delete(trig)


def test_invalid_trigger_is_refused_with_the_reason(admin_client):
    with pytest.raises(APIException) as e:
        admin_client.triggers.create(
            Trigger(title="Broken", conditions={"all": [{"field": "status", "operator": "is", "value": "bogus"}], "any": []}, actions=[{"field": "priority", "value": "high"}])
        )
    assert e.value.response.status_code == 422
    assert "conditions.all[0] (status): 'bogus' is not a status" in e.value.response.text
