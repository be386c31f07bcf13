"""Policies in the catalog: each work's own policy and owners' default policies, read at the
catalog's generation, staged by the writer and written in its commit
(:class:`PoliciesMixin`, a mixin of :class:`engine.catalog.Catalog`).

A work's policy changes in place in ``refs``, with the old one in ``policy_log`` so that
recovery can undo an uncommitted change; owners' defaults are rows of ``owner_policies``,
versioned by generation like references.
"""

from __future__ import annotations

import json
import sqlite3

from nanhu.engine.errors import InvalidArgument
from nanhu.engine.policy import Policy
from nanhu.engine.store.catalog_records import Reference


class PoliciesMixin:
    """The host provides ``generation``, ``_db``, the ``_owner_policies`` cache, the staging
    dicts ``_staged_policies`` / ``_staged_owner_policies``, :meth:`get` and
    :meth:`_require_writer`."""

    def owner_policies(self) -> dict[str, Policy]:
        """Every owner's default policy at this generation (cached per generation)."""
        if self._owner_policies is not None and self._owner_policies[0] == self.generation:
            return self._owner_policies[1]
        g = self.generation
        try:
            rows = self._db.execute(
                "SELECT owner, policy FROM owner_policies WHERE generation <= ? AND "
                "(replaced_generation IS NULL OR replaced_generation > ?)", (g, g)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            rows = []  # metadata of version 0 (no writer has opened it since): no defaults
        policies = {}
        for owner, text in rows:
            policy = Policy.from_stored(json.loads(text))
            if policy is not None:
                policies[owner] = policy
        self._owner_policies = (g, policies)
        return policies

    def owner_policy(self, owner: str) -> Policy | None:
        """An owner's default policy for works without their own, or None."""
        return self.owner_policies().get(owner) if owner else None

    def set_policy(self, ref_id: str, policy: Policy | dict | None) -> Reference:
        """Stage a new policy for ``ref_id``, replacing its own (``None`` or ``{}`` clears it,
        so that its owner's default applies again). A dict is validated as
        :meth:`Policy.from_dict` does: InvalidArgument for an action outside the fixed set."""
        self._require_writer()
        stored = policy_dict(policy)
        reference = self.get(ref_id)
        self._staged_policies[reference.ordinal] = stored
        return reference

    def set_owner_policy(self, owner: str, policy: Policy | dict | None) -> None:
        """Stage ``owner``'s default policy (``None`` or ``{}`` clears it)."""
        self._require_writer()
        if not owner:
            raise InvalidArgument("an owner's default policy needs the owner (tenant) it is for")
        stored = policy_dict(policy)
        self._staged_owner_policies[owner] = Policy.from_stored(stored)

    def _commit_policies(self, g: int) -> None:
        """Write the staged policies as generation ``g`` (inside the commit's transaction)."""
        for ordinal, policy in self._staged_policies.items():
            # Policies change in place; the log lets recovery undo an uncommitted change.
            self._db.execute(
                "INSERT INTO policy_log (ordinal, generation, old_policy) "
                "SELECT ordinal, ?, policy FROM refs WHERE ordinal = ?", (g, ordinal)
            )
            self._db.execute(
                "UPDATE refs SET policy = ? WHERE ordinal = ?", (json.dumps(policy), ordinal)
            )
        for owner, owner_policy in self._staged_owner_policies.items():
            # Versioned like references: readers of generation g see g's defaults.
            self._db.execute(
                "UPDATE owner_policies SET replaced_generation = ? WHERE owner = ? AND "
                "replaced_generation IS NULL", (g, owner))
            if owner_policy is not None:
                self._db.execute(
                    "INSERT INTO owner_policies (owner, policy, generation) VALUES (?,?,?)",
                    (owner, json.dumps(owner_policy.to_dict()), g))


def policy_dict(policy: Policy | dict | None) -> dict:
    """The stored form of a policy given as a Policy, a dict (validated) or None (none)."""
    if policy is None:
        return {}
    if not isinstance(policy, Policy):
        policy = Policy.from_dict(policy)
    return policy.to_dict() if policy is not None else {}

