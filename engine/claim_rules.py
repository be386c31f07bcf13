"""Who may do what to a claim: its statuses, its two parties, the changes each may make
(:data:`TRANSITIONS`), and :class:`Viewer`, the one place that decides which parties a tenant
is for a claim. :mod:`engine.claims` applies these rules; the CLI, gRPC and the review page all
go through it."""

from __future__ import annotations

from dataclasses import dataclass

from nanhu.engine.errors import InvalidArgument

STATUSES = ("open", "confirmed", "released", "disputed", "reinstated")
#: the two parties of a claim
RIGHTS_HOLDER, PLATFORM = "rights holder", "platform"
#: (from, to) -> the party that may make the change (admins may make any of them)
TRANSITIONS: dict[tuple[str, str], str] = {
    ("open", "confirmed"): RIGHTS_HOLDER,
    ("open", "released"): RIGHTS_HOLDER,
    ("open", "disputed"): PLATFORM,
    ("confirmed", "released"): RIGHTS_HOLDER,
    ("confirmed", "disputed"): PLATFORM,
    ("disputed", "reinstated"): RIGHTS_HOLDER,
    ("disputed", "released"): RIGHTS_HOLDER,
    ("reinstated", "released"): RIGHTS_HOLDER,
}


@dataclass(frozen=True)
class Viewer:
    """Who looks at claims: a tenant, whether it acts as rights holder (the ``register`` role:
    claims on works it owns) and as platform (the ``screen`` role: claims on uploads it
    screened), or an admin (every claim, either party). ``name`` goes into the history."""

    tenant: str
    rights_holder: bool = False
    platform: bool = False
    admin: bool = False
    name: str = ""

    def parties(self, claim: dict) -> set[str]:
        """The parties this viewer is for ``claim`` (empty: it may not see it)."""
        if self.admin:
            return {RIGHTS_HOLDER, PLATFORM}
        out = set()
        if self.rights_holder and self.tenant and claim["owner"] == self.tenant:
            out.add(RIGHTS_HOLDER)
        if self.platform and self.tenant and claim["tenant"] == self.tenant:
            out.add(PLATFORM)
        return out

    @property
    def who(self) -> str:
        return self.tenant or self.name or "local"


#: whoever can read the catalog's files: the CLI with ``--catalog``
LOCAL_ADMIN = Viewer(tenant="", admin=True, name="local")


def parse_status(text: str) -> str:
    status = str(text).strip().lower()
    if status not in STATUSES:
        raise InvalidArgument(f"status {text!r} is not one of {', '.join(STATUSES)}")
    return status


def allowed_changes(viewer: Viewer, claim: dict) -> list[str]:
    """The statuses ``viewer`` may move ``claim`` to now, by :data:`TRANSITIONS` (empty for a
    claim it is no party of, or a final one)."""
    parties = viewer.parties(claim)
    return [to for (old, to), party in TRANSITIONS.items()
            if old == claim["status"] and party in parties]
