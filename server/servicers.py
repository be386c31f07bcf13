"""The ``nanhu.v1`` servicers: messages in, engine calls (via :class:`server.service.Core`), messages out.

Every method runs inside :func:`server.status.rpc`, which maps engine errors to status codes and
logs the call. Authentication comes first in each method, before any work or any read of the
upload.
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections.abc import Iterator

from nanhu.engine.claims import MAX_UPLOAD_ID_CHARS
from nanhu.engine.errors import InvalidArgument, NotFound
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.validate import validate_fingerprint
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from nanhu.server import convert, jobs
from nanhu.server.auth import Authenticator
from nanhu.server.jobs import ScreenOptions
from nanhu.server.logs import REQUEST_ID
from nanhu.server.metrics import Metrics
from nanhu.server.service import Core, NewReference, viewer_for
from nanhu.server.status import CallCancelled, rpc
from nanhu.server.webhooks import WebhookSender
from nanhu.server.work import Limiter, Spool, WorkerPool, idle_limited, wait_for_call


def _options(msg: pb.ScreenOptions) -> ScreenOptions:
    return ScreenOptions(min_matched_duration_s=msg.min_matched_duration_s,
                         min_upload_share=msg.min_upload_share,
                         min_reference_share=msg.min_reference_share)


def _first(request_iterator) -> tuple:
    """The first chunk (which holds the header) and an iterator over every chunk's data."""
    first = next(request_iterator, None)
    if first is None or not first.HasField("header"):
        raise InvalidArgument("the first chunk of the stream must carry the header")

    def data() -> Iterator[bytes]:
        for chunk in itertools.chain([first], request_iterator):
            if chunk is not first and chunk.HasField("header"):
                raise InvalidArgument("only the first chunk may carry a header")
            yield chunk.data

    return first.header, data()


def _fingerprint(msg: pb.Fingerprint, core: Core, *, for_reference: bool) -> Fingerprint:
    """An edge client's fingerprint, checked field by field before any worker or index sees it
    (INVALID_ARGUMENT naming the field)."""
    return validate_fingerprint(convert.fingerprint_from_proto(msg), what="fingerprint",
                                for_reference=for_reference, audio_params=core.audio_params)


def _page_token(ref_id: str | None) -> str:
    return base64.urlsafe_b64encode(ref_id.encode()).decode() if ref_id else ""


def _after_id(token: str) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token is not one this server gave out") from None


class Shared:
    """What both servicers use: the core, auth, the worker pool, the limiter, the spool and the
    metrics; ``places`` are the server paths error messages must not show (and what to say
    instead, see :func:`server.status.public_message`)."""

    def __init__(self, core: Core, auth: Authenticator, pool: WorkerPool, limiter: Limiter,
                 spool: Spool, metrics: Metrics | None = None,
                 webhooks: WebhookSender | None = None) -> None:
        self.core, self.auth, self.pool, self.limiter, self.spool = core, auth, pool, limiter, spool
        self.metrics = metrics or Metrics()
        self.webhooks = webhooks
        self.places = {str(core.catalog_dir): "catalog", str(core.catalog_dir.resolve()): "catalog",
                       str(spool.path): "upload"}
        if auth.path is not None:
            self.places[str(auth.path)] = "keys file"
            self.places[str(auth.path.resolve())] = "keys file"

    def run(self, context, slot, name: str, job, /, *args, **kwargs):
        """Run ``job`` on ``name`` (the file as the caller calls it) in a worker process while
        the call lives; the slot stays taken until the job ends, even if the call does not wait
        for it. The job's stage times go to the metrics."""
        future = self.pool.submit_as(name, jobs.timed, REQUEST_ID.get(), job, *args, **kwargs)
        result, stage_times = wait_for_call(slot.hold_until(future), context)
        self.metrics.observe_stages(stage_times)
        return result

    def run_upload(self, context, slot, chunks, name: str, job, /, **kwargs):
        """Receive an upload into the spool, then run ``job(path, name, **kwargs)`` on it."""
        limits = self.core.limits
        with self.spool.receive(chunks, name=name, max_bytes=limits.max_upload_bytes) as path:
            if not context.is_active():
                raise CallCancelled("client went away after uploading")
            return self.run(context, slot, name, job, str(path), name, **kwargs)

    def screen(self, context, slot, source, name: str, options: ScreenOptions, chunks=None):
        """``(duration_s, digest, matches, thumbnails)`` of an upload (``chunks``) or a
        fingerprint (:func:`server.jobs.screen`)."""
        catalog_dir = str(self.core.catalog_dir)
        job = functools.partial(jobs.screen, catalog_dir, options=options,
                                max_duration_s=self.core.limits.max_duration_s,
                                cluster=getattr(self.core, "address", None),
                                cluster_env=getattr(self.core, "ray_env", None))
        if chunks is not None:
            return self.run_upload(context, slot, chunks, name, job)
        return self.run(context, slot, name, job, source, name)

    def record_claims(self, principal, matches, *, upload_id: str, filename: str,
                      duration_s: float, thumbnails=()) -> int:
        """Record the screening's claims (setting each acting match's ``claim_id``) before the
        response goes out, then wake the webhook sender; returns how many works were claimed."""
        claimed = self.core.claims.record(matches, tenant=principal.tenant,
                                          request_id=REQUEST_ID.get(), upload_id=upload_id,
                                          filename=filename, duration_s=duration_s,
                                          thumbnails=thumbnails)
        if claimed and self.webhooks is not None:
            self.webhooks.wake()
        return len(claimed)


def _upload_id(value: str, hints) -> str:
    """The request's upload id (older clients sent it as the ``upload_id`` hint)."""
    upload_id = value or hints.get("upload_id", "")
    if len(upload_id) > MAX_UPLOAD_ID_CHARS:
        raise InvalidArgument(f"upload_id is {len(upload_id)} characters long; at most "
                              f"{MAX_UPLOAD_ID_CHARS}")
    return upload_id


def _screen_response(duration_s: float, digest: str, matches,
                     missing: list[str] = ()) -> pb.ScreenResponse:
    return pb.ScreenResponse(duration_s=duration_s, digest=digest,
                             matches=[convert.match_to_proto(m) for m in matches],
                             partial=bool(missing), missing_shards=list(missing))


class ScreeningServicer(pb_grpc.ScreeningServicer):
    def __init__(self, shared: Shared) -> None:
        self.s = shared

    @rpc
    def Screen(self, request_iterator, context, call):
        principal = self.s.auth.principal(context).require("screen")
        call.note(tenant=principal.tenant, key=principal.key_id)
        with self.s.limiter.slot("screen") as slot:
            header, chunks = _first(idle_limited(request_iterator, self.s.core.limits.upload_idle_s))
            name = header.filename or "upload"
            upload_id = _upload_id(header.upload_id, header.hints)
            call.note(file=name, upload_id=upload_id,
                      **{f"hint.{k}": v for k, v in sorted(header.hints.items())})
            duration_s, digest, matches, pictures, missing = self.s.screen(
                context, slot, None, name, _options(header.options), chunks=chunks)
        claims = self.s.record_claims(principal, matches, upload_id=upload_id, filename=name,
                                      duration_s=duration_s, thumbnails=pictures)
        call.note(duration_s=duration_s, matches=len(matches), claims=claims,
                  **({"missing_shards": ",".join(missing)} if missing else {}))
        return _screen_response(duration_s, digest, matches, missing)

    @rpc
    def ScreenFingerprint(self, request, context, call):
        principal = self.s.auth.principal(context).require("screen")
        upload_id = _upload_id(request.upload_id, {})
        call.note(tenant=principal.tenant, key=principal.key_id, file=request.filename,
                  upload_id=upload_id)
        fp = _fingerprint(request.fingerprint, self.s.core, for_reference=False)
        name = request.filename or "fingerprint"
        with self.s.limiter.slot("screen") as slot:
            duration_s, digest, matches, _, missing = self.s.screen(
                context, slot, fp, name, _options(request.options))
        claims = self.s.record_claims(principal, matches, upload_id=upload_id, filename=name,
                                      duration_s=duration_s)
        call.note(duration_s=duration_s, matches=len(matches), claims=claims,
                  **({"missing_shards": ",".join(missing)} if missing else {}))
        return _screen_response(duration_s, digest, matches, missing)


class CatalogServicer(pb_grpc.CatalogServicer):
    def __init__(self, shared: Shared) -> None:
        self.s = shared

    def _new_reference(self, principal, header: pb.RegisterHeader) -> NewReference:
        if not header.reference_id:
            raise InvalidArgument("reference_id is required")
        return NewReference(
            reference_id=header.reference_id, title=header.title,
            owner=self.s.core.owner_for(principal, header.owner), metadata=dict(header.metadata),
            policy=convert.policy_from_proto(header.policy), filename=header.filename,
        )

    @rpc
    def Register(self, request_iterator, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, key=principal.key_id)
        with self.s.limiter.slot("register") as slot:
            header, chunks = _first(idle_limited(request_iterator,
                                                 self.s.core.limits.upload_idle_s))
            new = self._new_reference(principal, header)
            call.note(reference=new.reference_id, file=header.filename)
            self.s.core.precheck(new)
            fp = self.s.run_upload(context, slot, chunks, header.filename or new.reference_id,
                                   jobs.fingerprint_file, audio_params=self.s.core.audio_params,
                                   query=False, max_duration_s=self.s.core.limits.max_duration_s)
            if not context.is_active():
                raise CallCancelled("client went away before the commit")
            reference = self.s.core.register(new, fp)
        return self._with_conflicts(reference, call)

    def _with_conflicts(self, reference, call) -> pb.Reference:
        conflicts = self.s.core.conflicts_of(reference)
        if conflicts:
            call.note(conflicts=sum(c.held for c in conflicts), overlaps=len(conflicts))
        return convert.reference_to_proto(reference, conflicts)

    @rpc
    def RegisterFingerprint(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        new = self._new_reference(principal, request.header)
        call.note(tenant=principal.tenant, key=principal.key_id, reference=new.reference_id)
        with self.s.limiter.slot("register"):
            fp = _fingerprint(request.fingerprint, self.s.core, for_reference=True)
            # The digest is the client's claim: it counts only among its own tenant's works.
            reference = self.s.core.register(new, fp, digest_trusted=False)
        return self._with_conflicts(reference, call)

    @rpc
    def GetReference(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, reference=request.reference_id)
        return self._with_conflicts(self.s.core.get(principal, request.reference_id), call)

    @rpc
    def ListReferences(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, owner=request.owner)
        page, last = self.s.core.list(principal, owner=request.owner, page_size=request.page_size,
                                      after_id=_after_id(request.page_token))
        return pb.ListReferencesResponse(references=[convert.reference_to_proto(r) for r in page],
                                         next_page_token=_page_token(last))

    @rpc
    def DeleteReference(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, reference=request.reference_id)
        reference = self.s.core.delete(principal, request.reference_id)
        return pb.DeleteReferenceResponse(reference=convert.reference_to_proto(reference))

    @rpc
    def SetPolicy(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, reference=request.reference_id)
        policy = convert.policy_from_proto(request.policy)
        return convert.reference_to_proto(self.s.core.set_policy(principal, request.reference_id, policy))

    @rpc
    def SetOwnerPolicy(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, owner=request.owner)
        policy = convert.policy_from_proto(request.policy)
        return convert.owner_policy_to_proto(
            *self.s.core.set_owner_policy(principal, request.owner, policy))

    @rpc
    def GetOwnerPolicy(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, owner=request.owner)
        return convert.owner_policy_to_proto(*self.s.core.get_owner_policy(principal, request.owner))

    @rpc
    def Stats(self, request, context, call):
        principal = self.s.auth.principal(context)
        call.note(tenant=principal.tenant)
        stats = self.s.core.stats()
        return pb.StatsResponse(**{k: stats[k] for k in (
            "references", "audio_references", "video_references", "hours", "audio_hashes",
            "keyframes", "generation", "audio_index_bytes", "video_index_bytes", "audio_params",
            "video_params", "unowned_references", "held_conflicts")})

    @rpc
    def SetOwner(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, reference=request.reference_id, owner=request.owner)
        reference = self.s.core.set_owner(principal, request.reference_id, request.owner)
        return self._with_conflicts(reference, call)

    @rpc
    def ListConflicts(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant)
        found = self.s.core.list_conflicts(principal, include_resolved=request.include_resolved)
        return pb.ListConflictsResponse(conflicts=[convert.conflict_to_proto(c) for c in found])

    @rpc
    def ResolveConflict(self, request, context, call):
        principal = self.s.auth.principal(context).require("register")
        call.note(tenant=principal.tenant, conflict=request.conflict_id)
        return convert.conflict_to_proto(
            self.s.core.resolve_conflict(principal, request.conflict_id, request.note))


def _claims_principal(shared: Shared, context):
    """A claims call's caller: any key (its roles decide which claims it is a party of)."""
    return shared.auth.principal(context)


class ClaimsServicer(pb_grpc.ClaimsServicer):
    def __init__(self, shared: Shared) -> None:
        self.s = shared

    @rpc
    def ListClaims(self, request, context, call):
        principal = _claims_principal(self.s, context)
        call.note(tenant=principal.tenant, status=request.status)
        try:
            before = int(_after_id(request.page_token)) if request.page_token else None
        except ValueError:
            raise InvalidArgument("page_token is not one this server gave out") from None
        claims, more = self.s.core.claims.list(
            viewer_for(principal), status=request.status or None,
            reference_id=request.reference_id or None, upload_id=request.upload_id or None,
            limit=request.page_size or 100, before=before)
        call.note(claims=len(claims))
        return pb.ListClaimsResponse(claims=[convert.claim_to_proto(c) for c in claims],
                                     next_page_token=_page_token(str(more) if more else None))

    @rpc
    def GetClaim(self, request, context, call):
        principal = _claims_principal(self.s, context)
        call.note(tenant=principal.tenant, claim=request.claim_id)
        return convert.claim_to_proto(self.s.core.claims.get(viewer_for(principal), request.claim_id))

    @rpc
    def ResolveClaim(self, request, context, call):
        principal = _claims_principal(self.s, context)
        call.note(tenant=principal.tenant, claim=request.claim_id, status=request.status)
        claim = self.s.core.claims.resolve(viewer_for(principal), request.claim_id, request.status,
                                           note=request.note, request_id=REQUEST_ID.get())
        if self.s.webhooks is not None:
            self.s.webhooks.wake()
        return convert.claim_to_proto(claim)

    def _webhook_tenant(self, principal, tenant: str) -> str:
        tenant = tenant or principal.tenant
        if not tenant:
            raise InvalidArgument("name the tenant whose webhook this is")
        principal.require_owner(tenant, f"the webhook of tenant {tenant!r}")
        return tenant

    @rpc
    def SetWebhook(self, request, context, call):
        principal = _claims_principal(self.s, context)
        tenant = self._webhook_tenant(principal, request.tenant)
        call.note(tenant=principal.tenant, webhook_tenant=tenant)
        outbox = self.s.core.claims.outbox
        if not request.url:
            outbox.clear_webhook(tenant)
            return pb.Webhook(tenant=tenant)
        set_ = outbox.set_webhook(tenant, request.url, request.secret or None)
        return pb.Webhook(tenant=tenant, url=set_["url"], secret=set_["secret"])

    @rpc
    def GetWebhook(self, request, context, call):
        principal = _claims_principal(self.s, context)
        tenant = self._webhook_tenant(principal, request.tenant)
        call.note(tenant=principal.tenant, webhook_tenant=tenant)
        hook = self.s.core.claims.outbox.webhook(tenant)
        if hook is None:
            raise NotFound(f"tenant {tenant!r} has no webhook")
        return pb.Webhook(tenant=tenant, url=hook["url"], pending=hook["pending"],
                          failed=hook["failed"])
