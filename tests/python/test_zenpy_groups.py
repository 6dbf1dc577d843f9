"""Groups and group memberships through zenpy."""

import pytest
from zenpy.lib.api_objects import Group, GroupMembership
from zenpy.lib.exception import APIException


def test_create_group_and_add_agent(admin_client, agent_user, unique):
    name = unique("Tier 2")
    # POST /api/v2/groups.json {"group": {"name"}}
    group = admin_client.groups.create(Group(name=name))
    assert isinstance(group, Group)
    assert isinstance(group.id, int) and group.id > 0
    assert group.name == name
    assert group.created_at

    # GET /api/v2/groups/{id}.json
    assert admin_client.groups(id=group.id).name == name
    # GET /api/v2/groups.json?page[size]=100
    assert group.id in {g.id for g in admin_client.groups()}

    # POST /api/v2/group_memberships.json {"group_membership": {"user_id", "group_id"}}
    membership = admin_client.group_memberships.create(
        GroupMembership(user_id=agent_user.id, group_id=group.id))
    assert isinstance(membership, GroupMembership)
    assert isinstance(membership.id, int)
    assert (membership.user_id, membership.group_id) == (agent_user.id, group.id)

    # GET /api/v2/groups/{id}/memberships.json?include=None&page[size]=100
    # (zenpy really sends include=None here: unknown sideloads must be ignored)
    in_group = list(admin_client.groups.memberships(group=group.id))
    assert [(m.id, m.user_id, m.group_id) for m in in_group] == [(membership.id, agent_user.id, group.id)]

    # GET /api/v2/users/{id}/group_memberships.json?include=None&page[size]=100
    for_agent = {m.id: m.group_id for m in admin_client.users.group_memberships(user=agent_user.id)}
    assert for_agent.get(membership.id) == group.id

    # GET /api/v2/group_memberships.json?page[size]=100
    assert membership.id in {m.id for m in admin_client.group_memberships()}

    # GET /api/v2/users/{id}/groups.json?include=None&page[size]=100
    assert group.id in {g.id for g in admin_client.users.groups(user=agent_user.id)}


def test_end_user_cannot_join_a_group(admin_client, end_user, unique):
    group = admin_client.groups.create(Group(name=unique("Agents only")))
    with pytest.raises(APIException) as excinfo:
        admin_client.group_memberships.create(GroupMembership(user_id=end_user.id, group_id=group.id))
    assert excinfo.value.response.status_code == 422
    assert excinfo.value.response.json()["error"] == "RecordInvalid"
