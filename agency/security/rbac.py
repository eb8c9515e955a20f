"""Role-based access control: permissions, the roles and agent scopes that grant them.

Pure logic, no I/O. People hold roles (owner ⊇ admin ⊇ marketer ⊇ viewer); machines (service
identities, API keys) hold scopes, either a named agent scope such as ``agent:budget`` or a
single permission string such as ``metrics:read``. Each API route declares the one
:class:`Permission` it needs and calls :func:`require`; the API maps :class:`PermissionDenied`
to 403. Anything unknown (a role, a scope) grants nothing: a typo must deny, not allow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Permission(StrEnum):
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_CREATE = "campaigns:create"
    # pause, resume, cancel
    CAMPAIGNS_CONTROL = "campaigns:control"
    CONTENT_READ = "content:read"
    CONTENT_APPROVE = "content:approve"
    CONTENT_PUBLISH = "content:publish"
    REPORTS_READ = "reports:read"
    METRICS_READ = "metrics:read"
    BUDGET_PROPOSE = "budget:propose"
    # A person approves or rejects a budget reallocation above the approval threshold.
    BUDGET_APPROVE = "budget:approve"
    # Upload the tenant's weekly marketing history the market model is fitted on.
    MARKET_WRITE = "market:write"
    # Publish a new version of the tenant's brand profile (voice, banned words, claims, personas).
    BRAND_WRITE = "brand:write"
    # The tenant's contact store: read it; import, clean and settle CRM sync conflicts.
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    # Connect providers (CRM, ads, analytics, social, email) and rotate their credentials.
    INTEGRATIONS_MANAGE = "integrations:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MARKETER = "marketer"
    VIEWER = "viewer"


P = Permission

_VIEWER = frozenset({P.CAMPAIGNS_READ, P.CONTENT_READ, P.REPORTS_READ, P.METRICS_READ, P.CONTACTS_READ})
_MARKETER = _VIEWER | {
    P.CAMPAIGNS_CREATE, P.CAMPAIGNS_CONTROL, P.CONTENT_APPROVE, P.BUDGET_PROPOSE, P.BUDGET_APPROVE, P.MARKET_WRITE,
    P.BRAND_WRITE, P.CONTACTS_WRITE,
}
_ADMIN = _MARKETER | {P.API_KEYS_MANAGE, P.AUDIT_READ, P.INTEGRATIONS_MANAGE}
_OWNER = _ADMIN | {P.USERS_MANAGE}

# Publishing is the publisher agent's job after a human approval; no human role publishes
# directly, so approval can never be skipped.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.MARKETER: _MARKETER,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
}

# Each agent gets what its job needs and nothing else: the budget agent reads metrics and
# proposes spend but cannot publish; the publisher publishes but cannot approve.
AGENT_SCOPES: Mapping[str, frozenset[Permission]] = {
    "agent:budget": frozenset({P.METRICS_READ, P.BUDGET_PROPOSE, P.CAMPAIGNS_READ}),
    "agent:content": frozenset({P.CAMPAIGNS_READ, P.CONTENT_READ}),
    "agent:publisher": frozenset({P.CONTENT_READ, P.CONTENT_PUBLISH}),
    "agent:analyst": frozenset({P.CAMPAIGNS_READ, P.METRICS_READ, P.REPORTS_READ}),
}

# Credentials are administered by people: a leaked machine credential must not be able to
# mint more credentials or create users, whatever scopes it was (mis)configured with.
HUMAN_ONLY: frozenset[Permission] = frozenset({P.USERS_MANAGE, P.API_KEYS_MANAGE, P.INTEGRATIONS_MANAGE})

PrincipalKind = Literal["user", "service", "api_key"]


class PermissionDenied(Exception):
    """The principal lacks the permission (or acts on another tenant); the API answers 403."""

    def __init__(self, subject: str, permission: Permission, reason: str = "missing_permission") -> None:
        super().__init__(f"{subject} may not {permission} ({reason})")
        self.subject = subject
        self.permission = permission
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (roles) or a machine (scopes), always within one tenant.

    A user's ``scopes``, when present, narrow what the roles grant (a down-scoped token);
    they never add to it.
    """

    subject: str
    tenant_id: str
    kind: PrincipalKind
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Accept any iterable (token claims are tuples/lists) and UUIDs, store canonical forms.
        object.__setattr__(self, "tenant_id", str(self.tenant_id))
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        if self.kind not in ("user", "service", "api_key"):
            raise ValueError(f"unknown principal kind {self.kind!r}")


def scope_permissions(scopes: Iterable[str]) -> frozenset[Permission]:
    """What scopes grant: agent scope names expand to their sets, permission names to themselves."""
    granted: set[Permission] = set()
    for scope in scopes:
        if scope in AGENT_SCOPES:
            granted |= AGENT_SCOPES[scope]
        elif scope in Permission._value2member_map_:
            granted.add(Permission(scope))
    return frozenset(granted)


def role_permissions(roles: Iterable[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        if role in Role._value2member_map_:
            granted |= ROLE_PERMISSIONS[Role(role)]
    return frozenset(granted)


def principal_permissions(principal: Principal) -> frozenset[Permission]:
    if principal.kind == "user":
        granted = role_permissions(principal.roles)
        if principal.scopes:
            granted &= scope_permissions(principal.scopes)
        return granted
    # Machines: scopes only; a role claimed by a machine credential is ignored.
    return scope_permissions(principal.scopes) - HUMAN_ONLY


def has_permission(principal: Principal, permission: Permission) -> bool:
    return permission in principal_permissions(principal)


def require(
    principal: Principal, permission: Permission, *, tenant_id: str | uuid.UUID | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless the principal holds ``permission``.

    Pass ``tenant_id`` of the resource being touched: holding a permission in one tenant
    grants nothing in another.
    """
    if tenant_id is not None and str(tenant_id) != principal.tenant_id:
        raise PermissionDenied(principal.subject, permission, "other_tenant")
    if permission not in principal_permissions(principal):
        raise PermissionDenied(principal.subject, permission)


def roles_granting(permission: Permission) -> list[Role]:
    return [role for role in Role if permission in ROLE_PERMISSIONS[role]]


def permission_table_markdown(
    route_permissions: Mapping[str, Permission], *, include_agents: bool = True
) -> str:
    """A Markdown table, one row per route: the permission it needs and who holds it."""
    columns: list[tuple[str, frozenset[Permission]]] = [(role.value, ROLE_PERMISSIONS[role]) for role in Role]
    if include_agents:
        columns += [(f"`{name}`", granted) for name, granted in AGENT_SCOPES.items()]
    header = ["Route", "Permission", *(name for name, _ in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + [":---:"] * len(columns)) + "|",
    ]
    for route, permission in route_permissions.items():
        cells = [f"`{_escape(route)}`", f"`{permission.value}`"]
        cells += ["✓" if permission in granted else "–" for _, granted in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")
