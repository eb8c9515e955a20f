"""RBAC: what each role and agent scope may do, and how principals combine them."""

from __future__ import annotations

import uuid

import pytest

from agency.security.rbac import (
    AGENT_SCOPES,
    ROLE_PERMISSIONS,
    Permission,
    PermissionDenied,
    Principal,
    Role,
    has_permission,
    permission_table_markdown,
    principal_permissions,
    require,
    roles_granting,
)

TENANT = str(uuid.uuid4())


def user(*roles: str, scopes: tuple[str, ...] = ()) -> Principal:
    return Principal(
        subject="user-1", tenant_id=TENANT, kind="user", roles=frozenset(roles), scopes=frozenset(scopes)
    )


def service(*scopes: str, roles: tuple[str, ...] = ()) -> Principal:
    return Principal(
        subject="svc-1", tenant_id=TENANT, kind="service", roles=frozenset(roles), scopes=frozenset(scopes)
    )


def test_viewer_cannot_approve_content() -> None:
    with pytest.raises(PermissionDenied) as denied:
        require(user("viewer"), Permission.CONTENT_APPROVE)
    assert denied.value.permission is Permission.CONTENT_APPROVE
    assert denied.value.reason == "missing_permission"


def test_viewer_is_read_only() -> None:
    assert principal_permissions(user("viewer")) == {
        Permission.CAMPAIGNS_READ,
        Permission.CONTENT_READ,
        Permission.REPORTS_READ,
        Permission.METRICS_READ,
        Permission.CONTACTS_READ,
    }
    assert all(p.value.endswith(":read") for p in principal_permissions(user("viewer")))


def test_marketer_approves_content_and_controls_campaigns() -> None:
    marketer = user("marketer")
    for permission in (Permission.CONTENT_APPROVE, Permission.CAMPAIGNS_CREATE, Permission.CAMPAIGNS_CONTROL):
        require(marketer, permission)
    assert not has_permission(marketer, Permission.API_KEYS_MANAGE)
    assert not has_permission(marketer, Permission.AUDIT_READ)


def test_admin_manages_api_keys_and_reads_audit_but_not_users() -> None:
    admin = user("admin")
    require(admin, Permission.API_KEYS_MANAGE)
    require(admin, Permission.AUDIT_READ)
    assert not has_permission(admin, Permission.USERS_MANAGE)
    require(user("owner"), Permission.USERS_MANAGE)


def test_roles_are_nested() -> None:
    owner, admin, marketer, viewer = (
        ROLE_PERMISSIONS[r] for r in (Role.OWNER, Role.ADMIN, Role.MARKETER, Role.VIEWER)
    )
    assert owner > admin > marketer > viewer  # strict supersets


def test_no_human_role_publishes_directly() -> None:
    assert roles_granting(Permission.CONTENT_PUBLISH) == []


def test_budget_agent_reads_metrics_and_proposes_spend_but_cannot_publish() -> None:
    budget = service("agent:budget")
    require(budget, Permission.METRICS_READ)
    require(budget, Permission.BUDGET_PROPOSE)
    for forbidden in (Permission.CONTENT_PUBLISH, Permission.CONTENT_APPROVE, Permission.CAMPAIGNS_CONTROL):
        with pytest.raises(PermissionDenied):
            require(budget, forbidden)


def test_publisher_agent_publishes_but_cannot_approve() -> None:
    publisher = service("agent:publisher")
    require(publisher, Permission.CONTENT_PUBLISH)
    assert not has_permission(publisher, Permission.CONTENT_APPROVE)


def test_unknown_roles_and_scopes_grant_nothing() -> None:
    assert principal_permissions(user("superuser", "Owner", "owner ")) == frozenset()
    assert principal_permissions(service("agent:everything", "content:*", "*")) == frozenset()
    with pytest.raises(PermissionDenied):
        require(user("root"), Permission.CAMPAIGNS_READ)


def test_machines_ignore_roles_they_claim() -> None:
    assert principal_permissions(service(roles=("owner",))) == frozenset()
    key = Principal(
        subject="key-1",
        tenant_id=TENANT,
        kind="api_key",
        roles=frozenset({"admin"}),
        scopes=frozenset({"campaigns:read"}),
    )
    assert principal_permissions(key) == {Permission.CAMPAIGNS_READ}


def test_machines_can_hold_single_permission_scopes() -> None:
    assert principal_permissions(service("reports:read", "agent:budget")) == AGENT_SCOPES["agent:budget"] | {
        Permission.REPORTS_READ
    }


def test_machine_credentials_cannot_manage_credentials_or_users() -> None:
    misconfigured = service("api_keys:manage", "users:manage", "audit:read")
    assert principal_permissions(misconfigured) == {Permission.AUDIT_READ}


def test_user_scopes_narrow_roles_never_widen() -> None:
    narrowed = user("marketer", scopes=("campaigns:read",))
    assert principal_permissions(narrowed) == {Permission.CAMPAIGNS_READ}
    widened = user("viewer", scopes=("content:approve", "agent:publisher"))
    assert not has_permission(widened, Permission.CONTENT_APPROVE)
    assert not has_permission(widened, Permission.CONTENT_PUBLISH)
    assert principal_permissions(widened) == {Permission.CONTENT_READ}


def test_multiple_roles_combine() -> None:
    assert principal_permissions(user("viewer", "admin")) == ROLE_PERMISSIONS[Role.ADMIN]


def test_permission_in_another_tenant_is_denied() -> None:
    owner = user("owner")
    require(owner, Permission.CAMPAIGNS_READ, tenant_id=uuid.UUID(TENANT))  # same tenant, UUID form
    with pytest.raises(PermissionDenied) as denied:
        require(owner, Permission.CAMPAIGNS_READ, tenant_id=uuid.uuid4())
    assert denied.value.reason == "other_tenant"


def test_principal_normalises_claims() -> None:
    tenant = uuid.uuid4()
    principal = Principal(
        subject="u", tenant_id=tenant, kind="user", roles=("viewer", "viewer"), scopes=["a"]  # type: ignore[arg-type]
    )
    assert principal.tenant_id == str(tenant)
    assert principal.roles == frozenset({"viewer"})
    with pytest.raises(ValueError):
        Principal(subject="u", tenant_id=TENANT, kind="robot")  # type: ignore[arg-type]


def test_permission_table_has_a_row_per_route_with_the_roles_that_pass() -> None:
    routes = {
        "GET /campaigns/{id}": Permission.CAMPAIGNS_READ,
        "POST /campaigns/{id}/approvals": Permission.CONTENT_APPROVE,
        "POST /api-keys": Permission.API_KEYS_MANAGE,
        "GET /a|b": Permission.AUDIT_READ,
    }
    table = permission_table_markdown(routes)
    lines = table.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:6] == ["Route", "Permission", "owner", "admin", "marketer", "viewer"]
    assert "`agent:budget`" in header
    rows = lines[2:]
    assert len(rows) == len(routes)

    def cells(route: str) -> dict[str, str]:
        row = next(r for r in rows if r.startswith(f"| `{route}`"))
        values = [c.strip() for c in row.strip("|").replace("\\|", "¦").split("|")]
        return dict(zip(header, values, strict=True))

    approvals = cells("POST /campaigns/{id}/approvals")
    assert approvals["Permission"] == "`content:approve`"
    assert [approvals[r] for r in ("owner", "admin", "marketer", "viewer")] == ["✓", "✓", "✓", "–"]
    assert approvals["`agent:budget`"] == "–"
    assert [cells("POST /api-keys")[r] for r in ("owner", "admin", "marketer", "viewer")] == ["✓", "✓", "–", "–"]
    assert cells("GET /campaigns/{id}")["`agent:budget`"] == "✓"
    assert "GET /a\\|b" in table  # a pipe in a route cannot break the table

    without_agents = permission_table_markdown(routes, include_agents=False)
    assert "agent:" not in without_agents
