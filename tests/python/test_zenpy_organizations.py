"""Organizations and organization memberships through zenpy."""

from zenpy.lib.api_objects import Organization, OrganizationMembership, User


def _create_org(client, unique, **extra):
    name = unique("Acme")
    domain = f"{unique('acme')}.example.com"
    fields = dict(
        name=name,
        domain_names=[domain],
        tags=["vip", "emea"],
        organization_fields={},
        notes="Key account",
    )
    fields.update(extra)
    # POST /api/v2/organizations.json {"organization": {...}}
    return client.organizations.create(Organization(**fields)), name, domain


def test_create_and_show_organization(admin_client, unique):
    org, name, domain = _create_org(admin_client, unique)
    assert isinstance(org, Organization)
    assert isinstance(org.id, int) and org.id > 0
    assert org.name == name
    assert list(org.domain_names) == [domain]
    assert set(org.tags) == {"vip", "emea"}
    assert org.notes == "Key account"
    assert org.created_at

    # GET /api/v2/organizations/{id}.json
    shown = admin_client.organizations(id=org.id)
    assert shown.id == org.id
    assert shown.name == name
    assert list(shown.domain_names) == [domain]
    assert set(shown.tags) == {"vip", "emea"}
    assert shown.notes == "Key account"
    assert dict(shown.organization_fields or {}) == {}


def test_list_organizations(admin_client, unique):
    first, _, _ = _create_org(admin_client, unique)
    second, _, _ = _create_org(admin_client, unique)
    # GET /api/v2/organizations.json?page[size]=100  (zenpy asks for cursor pagination)
    by_id = {o.id: o for o in admin_client.organizations()}
    assert first.id in by_id and second.id in by_id
    assert by_id[first.id].name == first.name


def test_update_organization(admin_client, unique):
    org, name, domain = _create_org(admin_client, unique)
    org.notes = "Downgraded"
    org.tags = ["emea"]
    # PUT /api/v2/organizations/{id}.json {"organization": {"id", "notes", "tags"}}
    updated = admin_client.organizations.update(org)
    assert isinstance(updated, Organization)
    assert updated.id == org.id
    assert updated.name == name
    assert updated.notes == "Downgraded"
    assert list(updated.tags) == ["emea"]
    assert list(updated.domain_names) == [domain]

    shown = admin_client.organizations(id=org.id)
    assert shown.notes == "Downgraded"
    assert list(shown.tags) == ["emea"]


def test_organization_membership_create_and_list(admin_client, unique, unique_email):
    org, _, _ = _create_org(admin_client, unique)
    user = admin_client.users.create(User(name="Org Member", email=unique_email("member"), role="end-user"))

    # POST /api/v2/organization_memberships.json {"organization_membership": {"user_id", "organization_id"}}
    membership = admin_client.organization_memberships.create(
        OrganizationMembership(user_id=user.id, organization_id=org.id))
    assert isinstance(membership, OrganizationMembership)
    assert isinstance(membership.id, int)
    assert membership.user_id == user.id
    assert membership.organization_id == org.id

    # GET /api/v2/users/{id}/organization_memberships.json?page[size]=100
    for_user = list(admin_client.users.organization_memberships(user=user.id))
    assert [(m.id, m.user_id, m.organization_id) for m in for_user] == [(membership.id, user.id, org.id)]

    # GET /api/v2/organization_memberships.json?page[size]=100
    all_ids = {m.id for m in admin_client.organization_memberships()}
    assert membership.id in all_ids

    # The first membership is the user's default organization.
    assert admin_client.users(id=user.id).organization_id == org.id
