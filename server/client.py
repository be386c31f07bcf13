"""A small Python client for platforms and rights holders.

    from nanhu.server.client import NanhuClient

    with NanhuClient("127.0.0.1:50051") as nanhu:          # the key from $NANHU_API_KEY
        result = nanhu.screen_file("upload.mp4", min_matched_duration_s=5)
        for match in result["matches"]:
            print(match["reference_id"], match["query_start_s"], match.get("policy", ""))

Results are plain dicts shaped like ``nanhu query --json`` (screening) and ``nanhu list --json``
(references). Every call has a deadline (``timeout`` seconds unless given per call); errors are
``grpc.RpcError`` with the server's status code and message, and the server's request id in
the trailing metadata (``x-request-id``; quote it when asking the operator).

Calls wait for the server to be reachable (``wait_for_ready``) until their deadline, and gRPC
retries them (its retry policy, in the channel's service config) when the server answers
``UNAVAILABLE`` (shutting down, catalog being written) or ``RESOURCE_EXHAUSTED`` (busy), with
exponential backoff; the server says when a retry cannot help (an upload over the limit). A
retried registration whose first attempt did commit answers ``ALREADY_EXISTS`` for its own id.
gRPC retries a call only while all it sent fits the call's retry buffer. gRPC's default
(256 KiB) is smaller than a few seconds' query fingerprint, so this client's buffer holds a whole
message (``retry_buffer_bytes``, default ``max_message_bytes``): every fingerprint call can be
retried, and so can an upload up to that size, which then stays in memory until the server
answers. A larger upload is not retried once it outgrew the buffer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc

from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from nanhu.server import convert

CHUNK_BYTES = 256 * 1024
#: status codes gRPC retries the calls of this client on
RETRYABLE_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")


def _chunks(path: Path, first, kind) -> Iterator:
    yield first
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            yield kind(data=block)


def policy_message(action: str = "", *, modality: str = "", min_match_s: float = 0.0,
                   min_upload_share: float = 0.0, min_reference_share: float = 0.0,
                   excluded_ranges=(), enabled: bool = True, label: str = "") -> pb.Policy:
    """A ``nanhu.v1.Policy`` (the server validates it); no action and nothing else: no policy.
    ``excluded_ranges`` are ``(start_s, end_s)`` pairs of the work."""
    return pb.Policy(action=action, label=label, modality=modality, min_match_s=min_match_s,
                     min_upload_share=min_upload_share, min_reference_share=min_reference_share,
                     disabled=not enabled, excluded_ranges=[
                         pb.TimeRange(start_s=float(s), end_s=float(e)) for s, e in excluded_ranges])


def service_config(attempts: int = 5, *, initial_backoff_s: float = 0.2,
                   max_backoff_s: float = 5.0) -> dict:
    """gRPC's service config for Nanhu's services: up to ``attempts`` tries per call (gRPC caps
    it at 5) on :data:`RETRYABLE_CODES`, backoff doubling from ``initial_backoff_s``."""
    config: dict = {"name": [{"service": name} for name in
                             ("nanhu.v1.Screening", "nanhu.v1.Catalog", "nanhu.v1.Claims")]}
    if attempts > 1:
        config["retryPolicy"] = {
            "maxAttempts": min(int(attempts), 5),
            "initialBackoff": f"{initial_backoff_s:g}s",
            "maxBackoff": f"{max_backoff_s:g}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": list(RETRYABLE_CODES),
        }
    return {"methodConfig": [config]}


class NanhuClient:
    """One channel to a Nanhu server; thread-safe, cheap to share.

    ``key``: the API key (default: ``$NANHU_API_KEY``). TLS: ``tls=True`` checks the server
    against the system's CAs, ``root_certificates`` (PEM bytes) against those; mutual TLS adds
    the client's own ``certificate_chain`` and ``private_key`` (PEM bytes). ``attempts``: tries
    per call (1: no retries). ``wait_for_ready``: a call to a server not reachable yet waits for
    it until its deadline instead of failing at once with ``UNAVAILABLE``. ``retry_buffer_bytes``:
    how much of a call gRPC keeps to resend on a retry (default: ``max_message_bytes``, so any
    single request fits); a call that sent more is not retried.
    """

    def __init__(self, address: str, *, key: str | None = None, timeout: float = 60.0,
                 tls: bool = False, root_certificates: bytes | None = None,
                 certificate_chain: bytes | None = None, private_key: bytes | None = None,
                 attempts: int = 5, wait_for_ready: bool = True,
                 max_message_bytes: int = 64 * 2**20,
                 retry_buffer_bytes: int | None = None) -> None:
        if retry_buffer_bytes is None:
            retry_buffer_bytes = max_message_bytes
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.enable_retries", 1),
                   # Once a call sent more than this, gRPC commits it: no retry. Its 256 KiB
                   # default is below a few seconds' query fingerprint (about 100 KB a second).
                   ("grpc.per_rpc_retry_buffer_size", int(retry_buffer_bytes)),
                   ("grpc.service_config", json.dumps(service_config(attempts)))]
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("a client certificate needs its private key, and the other way round")
        if tls or root_certificates is not None or certificate_chain is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                                       private_key=private_key,
                                                       certificate_chain=certificate_chain)
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        if key is None:
            key = os.environ.get("NANHU_API_KEY") or None
        self.metadata = (("x-api-key", key),) if key else ()
        self.screening = pb_grpc.ScreeningStub(self.channel)
        self.catalog = pb_grpc.CatalogStub(self.channel)
        self.claims = pb_grpc.ClaimsStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> NanhuClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None):
        return method(request, timeout=timeout or self.timeout, metadata=self.metadata,
                      wait_for_ready=self.wait_for_ready)

    # --- screening ---------------------------------------------------------------------------
    def screen_file(self, path: str | Path, *, min_matched_duration_s: float = 0.0,
                    min_upload_share: float = 0.0, min_reference_share: float = 0.0,
                    hints: dict | None = None, upload_id: str = "",
                    timeout: float | None = None) -> dict:
        """Upload a media file and return ``{"duration_s", "digest", "matches": [...]}``;
        ``upload_id`` (the platform's id of the upload) is kept with the claims it leads to."""
        path = Path(path)
        header = pb.ScreenHeader(filename=path.name, hints=hints or {}, upload_id=upload_id,
                                 options=pb.ScreenOptions(
            min_matched_duration_s=min_matched_duration_s, min_upload_share=min_upload_share,
            min_reference_share=min_reference_share))
        response = self._call(self.screening.Screen,
                              _chunks(path, pb.ScreenChunk(header=header), pb.ScreenChunk), timeout)
        return convert.screen_response_to_dict(response)

    def screen_fingerprint(self, fp, *, min_matched_duration_s: float = 0.0,
                           min_upload_share: float = 0.0, min_reference_share: float = 0.0,
                           name: str = "", upload_id: str = "", timeout: float | None = None) -> dict:
        """Screen a query fingerprint (``engine.fingerprint_media(path, query=True,
        keys_on_demand=True)``: its audio travels as peaks, and the server's peak check runs
        on it; a keyed fingerprint is matched on votes alone)."""
        message = fp if isinstance(fp, pb.Fingerprint) else convert.fingerprint_to_proto(fp)
        request = pb.ScreenFingerprintRequest(fingerprint=message, filename=name, upload_id=upload_id,
                                              options=pb.ScreenOptions(
            min_matched_duration_s=min_matched_duration_s, min_upload_share=min_upload_share,
            min_reference_share=min_reference_share))
        return convert.screen_response_to_dict(self._call(self.screening.ScreenFingerprint, request,
                                                          timeout))

    # --- registration ------------------------------------------------------------------------
    @staticmethod
    def _header(reference_id: str, title: str, metadata: dict | None, policy_label: str,
                excluded_ranges, owner: str, filename: str = "",
                policy: dict | None = None) -> pb.RegisterHeader:
        if policy is None:
            message = policy_message(label=policy_label, excluded_ranges=excluded_ranges)
        else:
            message = policy_message(**policy)
        return pb.RegisterHeader(reference_id=reference_id, title=title, metadata=metadata or {},
                                 owner=owner, filename=filename, policy=message)

    def register_file(self, path: str | Path, reference_id: str, *, title: str = "",
                      metadata: dict | None = None, policy_label: str = "", excluded_ranges=(),
                      owner: str = "", policy: dict | None = None,
                      timeout: float | None = None) -> dict:
        """Register a work from its media file; returns the reference as a dict. ``policy``:
        the fields of :func:`policy_message` (``{"action": "block", "min_match_s": 10}``);
        ``policy_label``/``excluded_ranges`` are the older way to give an action and ranges."""
        path = Path(path)
        header = self._header(reference_id, title, metadata, policy_label, excluded_ranges, owner,
                              path.name, policy)
        reference = self._call(self.catalog.Register,
                               _chunks(path, pb.RegisterChunk(header=header), pb.RegisterChunk), timeout)
        return convert.reference_to_dict(reference)

    def register_fingerprint(self, fp, reference_id: str, *, title: str = "",
                             metadata: dict | None = None, policy_label: str = "", excluded_ranges=(),
                             owner: str = "", policy: dict | None = None,
                             timeout: float | None = None) -> dict:
        """Register a work from a reference fingerprint (``fingerprint_media(path)``)."""
        message = fp if isinstance(fp, pb.Fingerprint) else convert.fingerprint_to_proto(fp)
        request = pb.RegisterFingerprintRequest(
            header=self._header(reference_id, title, metadata, policy_label, excluded_ranges, owner,
                                policy=policy),
            fingerprint=message)
        return convert.reference_to_dict(self._call(self.catalog.RegisterFingerprint, request, timeout))

    # --- catalog -----------------------------------------------------------------------------
    def get(self, reference_id: str, *, timeout: float | None = None) -> dict:
        return convert.reference_to_dict(self._call(
            self.catalog.GetReference, pb.GetReferenceRequest(reference_id=reference_id), timeout))

    def list(self, *, owner: str = "", page_size: int = 100, timeout: float | None = None) -> list[dict]:
        """Every visible reference, all pages, in id order."""
        out, token = [], ""
        while True:
            page = self._call(self.catalog.ListReferences, pb.ListReferencesRequest(
                owner=owner, page_size=page_size, page_token=token), timeout)
            out.extend(convert.reference_to_dict(r) for r in page.references)
            token = page.next_page_token
            if not token:
                return out

    def delete(self, reference_id: str, *, timeout: float | None = None) -> dict:
        response = self._call(self.catalog.DeleteReference,
                              pb.DeleteReferenceRequest(reference_id=reference_id), timeout)
        return convert.reference_to_dict(response.reference)

    def set_policy(self, reference_id: str, action: str = "", *, timeout: float | None = None,
                   **policy) -> dict:
        """Replace the work's own policy (the fields of :func:`policy_message`); returns the
        reference, its ``policy`` in stored form. No fields: clears it."""
        request = pb.SetPolicyRequest(reference_id=reference_id,
                                      policy=policy_message(action, **policy))
        return convert.reference_to_dict(self._call(self.catalog.SetPolicy, request, timeout))

    def clear_policy(self, reference_id: str, *, timeout: float | None = None) -> dict:
        """Remove the work's own policy: its owner's default applies again."""
        return self.set_policy(reference_id, timeout=timeout)

    def set_owner_policy(self, owner: str = "", action: str = "", *,
                         timeout: float | None = None, **policy) -> dict:
        """Set (or with no fields clear) an owner's default policy; ``owner`` empty: the key's
        tenant. Returns ``{"owner", "policy"}``."""
        request = pb.SetOwnerPolicyRequest(owner=owner, policy=policy_message(action, **policy))
        return convert.owner_policy_to_dict(self._call(self.catalog.SetOwnerPolicy, request, timeout))

    def clear_owner_policy(self, owner: str = "", *, timeout: float | None = None) -> dict:
        return self.set_owner_policy(owner, timeout=timeout)

    def get_owner_policy(self, owner: str = "", *, timeout: float | None = None) -> dict:
        """``{"owner", "policy"}``: the owner's default policy (``{}`` when none)."""
        return convert.owner_policy_to_dict(self._call(
            self.catalog.GetOwnerPolicy, pb.GetOwnerPolicyRequest(owner=owner), timeout))

    def stats(self, *, timeout: float | None = None) -> dict:
        response = self._call(self.catalog.Stats, pb.StatsRequest(), timeout)
        return {field.name: getattr(response, field.name) for field in response.DESCRIPTOR.fields}

    # --- owners and reference conflicts ------------------------------------------------------
    def set_owner(self, reference_id: str, owner: str, *, timeout: float | None = None) -> dict:
        """Assign or transfer a work (admin keys only); returns the reference."""
        return convert.reference_to_dict(self._call(self.catalog.SetOwner, pb.SetOwnerRequest(
            reference_id=reference_id, owner=owner), timeout))

    def list_conflicts(self, *, include_resolved: bool = False,
                       timeout: float | None = None) -> list[dict]:
        """Overlaps found at registration involving the key's works (``nanhu conflicts --json``)."""
        response = self._call(self.catalog.ListConflicts, pb.ListConflictsRequest(
            include_resolved=include_resolved), timeout)
        return [convert.conflict_to_dict(c) for c in response.conflicts]

    def resolve_conflict(self, conflict_id: int, *, note: str = "",
                         timeout: float | None = None) -> dict:
        return convert.conflict_to_dict(self._call(self.catalog.ResolveConflict,
                                                   pb.ResolveConflictRequest(conflict_id=conflict_id,
                                                                             note=note), timeout))

    # --- claims ------------------------------------------------------------------------------
    def list_claims(self, *, status: str = "", reference_id: str = "", upload_id: str = "",
                    page_size: int = 100, timeout: float | None = None) -> list[dict]:
        """Every claim the key is a party of (all pages), newest first."""
        out, token = [], ""
        while True:
            page = self._call(self.claims.ListClaims, pb.ListClaimsRequest(
                status=status, reference_id=reference_id, upload_id=upload_id,
                page_size=page_size, page_token=token), timeout)
            out.extend(convert.claim_to_dict(c) for c in page.claims)
            token = page.next_page_token
            if not token:
                return out

    def get_claim(self, claim_id: str, *, timeout: float | None = None) -> dict:
        return convert.claim_to_dict(self._call(self.claims.GetClaim,
                                                pb.GetClaimRequest(claim_id=claim_id), timeout))

    def resolve_claim(self, claim_id: str, status: str, *, note: str = "",
                      timeout: float | None = None) -> dict:
        """Change a claim's status (``confirmed``, ``released``, ``reinstated``, ``disputed``)."""
        return convert.claim_to_dict(self._call(self.claims.ResolveClaim, pb.ResolveClaimRequest(
            claim_id=claim_id, status=status, note=note), timeout))

    def set_webhook(self, url: str, *, tenant: str = "", secret: str = "",
                    timeout: float | None = None) -> dict:
        """Set the tenant's webhook; returns ``{"tenant", "url", "secret", ...}`` (the secret
        only now). An empty ``url`` removes it."""
        return convert.webhook_to_dict(self._call(self.claims.SetWebhook, pb.SetWebhookRequest(
            tenant=tenant, url=url, secret=secret), timeout))

    def clear_webhook(self, *, tenant: str = "", timeout: float | None = None) -> dict:
        return self.set_webhook("", tenant=tenant, timeout=timeout)

    def get_webhook(self, *, tenant: str = "", timeout: float | None = None) -> dict:
        return convert.webhook_to_dict(self._call(self.claims.GetWebhook, pb.GetWebhookRequest(
            tenant=tenant), timeout))
