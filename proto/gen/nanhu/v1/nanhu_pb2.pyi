from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScreenOptions(_message.Message):
    __slots__ = ("min_matched_duration_s", "min_upload_share", "min_reference_share")
    MIN_MATCHED_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MIN_UPLOAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    MIN_REFERENCE_SHARE_FIELD_NUMBER: _ClassVar[int]
    min_matched_duration_s: float
    min_upload_share: float
    min_reference_share: float
    def __init__(self, min_matched_duration_s: _Optional[float] = ..., min_upload_share: _Optional[float] = ..., min_reference_share: _Optional[float] = ...) -> None: ...

class ScreenHeader(_message.Message):
    __slots__ = ("filename", "hints", "options", "upload_id")
    class HintsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    filename: str
    hints: _containers.ScalarMap[str, str]
    options: ScreenOptions
    upload_id: str
    def __init__(self, filename: _Optional[str] = ..., hints: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Union[ScreenOptions, _Mapping]] = ..., upload_id: _Optional[str] = ...) -> None: ...

class ScreenChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ScreenHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ScreenHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ScreenFingerprintRequest(_message.Message):
    __slots__ = ("fingerprint", "options", "filename", "upload_id")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    fingerprint: Fingerprint
    options: ScreenOptions
    filename: str
    upload_id: str
    def __init__(self, fingerprint: _Optional[_Union[Fingerprint, _Mapping]] = ..., options: _Optional[_Union[ScreenOptions, _Mapping]] = ..., filename: _Optional[str] = ..., upload_id: _Optional[str] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("duration_s", "matches", "digest", "partial", "missing_shards")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    digest: str
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, duration_s: _Optional[float] = ..., matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., digest: _Optional[str] = ..., partial: _Optional[bool] = ..., missing_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("reference_id", "title", "modality", "score", "query_start_s", "query_end_s", "reference_start_s", "reference_end_s", "speed", "evidence", "policy", "expected_false_matches", "action", "band", "reason", "matched_s", "upload_share", "reference_share", "policy_source", "trimmed", "claim_id")
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    QUERY_START_S_FIELD_NUMBER: _ClassVar[int]
    QUERY_END_S_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_START_S_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_END_S_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FALSE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_S_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SHARE_FIELD_NUMBER: _ClassVar[int]
    POLICY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    title: str
    modality: str
    score: float
    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    speed: float
    evidence: _struct_pb2.Struct
    policy: str
    expected_false_matches: float
    action: str
    band: str
    reason: str
    matched_s: float
    upload_share: float
    reference_share: float
    policy_source: str
    trimmed: _containers.RepeatedCompositeFieldContainer[Stretch]
    claim_id: str
    def __init__(self, reference_id: _Optional[str] = ..., title: _Optional[str] = ..., modality: _Optional[str] = ..., score: _Optional[float] = ..., query_start_s: _Optional[float] = ..., query_end_s: _Optional[float] = ..., reference_start_s: _Optional[float] = ..., reference_end_s: _Optional[float] = ..., speed: _Optional[float] = ..., evidence: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., policy: _Optional[str] = ..., expected_false_matches: _Optional[float] = ..., action: _Optional[str] = ..., band: _Optional[str] = ..., reason: _Optional[str] = ..., matched_s: _Optional[float] = ..., upload_share: _Optional[float] = ..., reference_share: _Optional[float] = ..., policy_source: _Optional[str] = ..., trimmed: _Optional[_Iterable[_Union[Stretch, _Mapping]]] = ..., claim_id: _Optional[str] = ...) -> None: ...

class Stretch(_message.Message):
    __slots__ = ("query_start_s", "query_end_s", "reference_start_s", "reference_end_s")
    QUERY_START_S_FIELD_NUMBER: _ClassVar[int]
    QUERY_END_S_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_START_S_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_END_S_FIELD_NUMBER: _ClassVar[int]
    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    def __init__(self, query_start_s: _Optional[float] = ..., query_end_s: _Optional[float] = ..., reference_start_s: _Optional[float] = ..., reference_end_s: _Optional[float] = ...) -> None: ...

class AudioLandmarks(_message.Message):
    __slots__ = ("params_tag", "hashes", "frames", "speed_index", "speeds", "pitches")
    PARAMS_TAG_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SPEED_INDEX_FIELD_NUMBER: _ClassVar[int]
    SPEEDS_FIELD_NUMBER: _ClassVar[int]
    PITCHES_FIELD_NUMBER: _ClassVar[int]
    params_tag: str
    hashes: _containers.RepeatedScalarFieldContainer[int]
    frames: _containers.RepeatedScalarFieldContainer[int]
    speed_index: _containers.RepeatedScalarFieldContainer[int]
    speeds: _containers.RepeatedScalarFieldContainer[float]
    pitches: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, params_tag: _Optional[str] = ..., hashes: _Optional[_Iterable[int]] = ..., frames: _Optional[_Iterable[int]] = ..., speed_index: _Optional[_Iterable[int]] = ..., speeds: _Optional[_Iterable[float]] = ..., pitches: _Optional[_Iterable[float]] = ...) -> None: ...

class AudioPeaks(_message.Message):
    __slots__ = ("params_tag", "frames", "log_freq", "prominence", "warp_speeds", "warp_pitches")
    PARAMS_TAG_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LOG_FREQ_FIELD_NUMBER: _ClassVar[int]
    PROMINENCE_FIELD_NUMBER: _ClassVar[int]
    WARP_SPEEDS_FIELD_NUMBER: _ClassVar[int]
    WARP_PITCHES_FIELD_NUMBER: _ClassVar[int]
    params_tag: str
    frames: _containers.RepeatedScalarFieldContainer[int]
    log_freq: _containers.RepeatedScalarFieldContainer[float]
    prominence: _containers.RepeatedScalarFieldContainer[float]
    warp_speeds: _containers.RepeatedScalarFieldContainer[float]
    warp_pitches: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, params_tag: _Optional[str] = ..., frames: _Optional[_Iterable[int]] = ..., log_freq: _Optional[_Iterable[float]] = ..., prominence: _Optional[_Iterable[float]] = ..., warp_speeds: _Optional[_Iterable[float]] = ..., warp_pitches: _Optional[_Iterable[float]] = ...) -> None: ...

class VideoKeyframes(_message.Message):
    __slots__ = ("params_tag", "dim", "vectors", "times_s", "local")
    PARAMS_TAG_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TIMES_S_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    params_tag: str
    dim: int
    vectors: _containers.RepeatedScalarFieldContainer[float]
    times_s: _containers.RepeatedScalarFieldContainer[float]
    local: LocalFeatures
    def __init__(self, params_tag: _Optional[str] = ..., dim: _Optional[int] = ..., vectors: _Optional[_Iterable[float]] = ..., times_s: _Optional[_Iterable[float]] = ..., local: _Optional[_Union[LocalFeatures, _Mapping]] = ...) -> None: ...

class LocalFeatures(_message.Message):
    __slots__ = ("params_tag", "width", "height", "times_s", "counts", "xy", "descriptors", "flipped")
    PARAMS_TAG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMES_S_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    XY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    FLIPPED_FIELD_NUMBER: _ClassVar[int]
    params_tag: str
    width: int
    height: int
    times_s: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    xy: bytes
    descriptors: bytes
    flipped: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, params_tag: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., times_s: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., xy: _Optional[bytes] = ..., descriptors: _Optional[bytes] = ..., flipped: _Optional[_Iterable[bool]] = ...) -> None: ...

class Fingerprint(_message.Message):
    __slots__ = ("format_version", "duration_s", "digest", "audio", "video", "audio_peaks", "reference_peaks")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_PEAKS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PEAKS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    duration_s: float
    digest: str
    audio: AudioLandmarks
    video: VideoKeyframes
    audio_peaks: AudioPeaks
    reference_peaks: AudioPeaks
    def __init__(self, format_version: _Optional[int] = ..., duration_s: _Optional[float] = ..., digest: _Optional[str] = ..., audio: _Optional[_Union[AudioLandmarks, _Mapping]] = ..., video: _Optional[_Union[VideoKeyframes, _Mapping]] = ..., audio_peaks: _Optional[_Union[AudioPeaks, _Mapping]] = ..., reference_peaks: _Optional[_Union[AudioPeaks, _Mapping]] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_s", "end_s")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("label", "excluded_ranges", "action", "modality", "min_match_s", "min_upload_share", "min_reference_share", "disabled")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_RANGES_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MIN_MATCH_S_FIELD_NUMBER: _ClassVar[int]
    MIN_UPLOAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    MIN_REFERENCE_SHARE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    label: str
    excluded_ranges: _containers.RepeatedCompositeFieldContainer[TimeRange]
    action: str
    modality: str
    min_match_s: float
    min_upload_share: float
    min_reference_share: float
    disabled: bool
    def __init__(self, label: _Optional[str] = ..., excluded_ranges: _Optional[_Iterable[_Union[TimeRange, _Mapping]]] = ..., action: _Optional[str] = ..., modality: _Optional[str] = ..., min_match_s: _Optional[float] = ..., min_upload_share: _Optional[float] = ..., min_reference_share: _Optional[float] = ..., disabled: _Optional[bool] = ...) -> None: ...

class Reference(_message.Message):
    __slots__ = ("reference_id", "title", "owner", "duration_s", "digest", "modalities", "metadata", "policy", "audio_hashes", "keyframes", "created_at_unix_s", "conflicts")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_HASHES_FIELD_NUMBER: _ClassVar[int]
    KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    title: str
    owner: str
    duration_s: float
    digest: str
    modalities: str
    metadata: _containers.ScalarMap[str, str]
    policy: Policy
    audio_hashes: int
    keyframes: int
    created_at_unix_s: float
    conflicts: _containers.RepeatedCompositeFieldContainer[Conflict]
    def __init__(self, reference_id: _Optional[str] = ..., title: _Optional[str] = ..., owner: _Optional[str] = ..., duration_s: _Optional[float] = ..., digest: _Optional[str] = ..., modalities: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., audio_hashes: _Optional[int] = ..., keyframes: _Optional[int] = ..., created_at_unix_s: _Optional[float] = ..., conflicts: _Optional[_Iterable[_Union[Conflict, _Mapping]]] = ...) -> None: ...

class RegisterHeader(_message.Message):
    __slots__ = ("reference_id", "title", "metadata", "policy", "owner", "filename")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    title: str
    metadata: _containers.ScalarMap[str, str]
    policy: Policy
    owner: str
    filename: str
    def __init__(self, reference_id: _Optional[str] = ..., title: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., owner: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class RegisterChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: RegisterHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[RegisterHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RegisterFingerprintRequest(_message.Message):
    __slots__ = ("header", "fingerprint")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    header: RegisterHeader
    fingerprint: Fingerprint
    def __init__(self, header: _Optional[_Union[RegisterHeader, _Mapping]] = ..., fingerprint: _Optional[_Union[Fingerprint, _Mapping]] = ...) -> None: ...

class GetReferenceRequest(_message.Message):
    __slots__ = ("reference_id",)
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    def __init__(self, reference_id: _Optional[str] = ...) -> None: ...

class ListReferencesRequest(_message.Message):
    __slots__ = ("owner", "page_size", "page_token")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner: str
    page_size: int
    page_token: str
    def __init__(self, owner: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReferencesResponse(_message.Message):
    __slots__ = ("references", "next_page_token")
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    references: _containers.RepeatedCompositeFieldContainer[Reference]
    next_page_token: str
    def __init__(self, references: _Optional[_Iterable[_Union[Reference, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteReferenceRequest(_message.Message):
    __slots__ = ("reference_id",)
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    def __init__(self, reference_id: _Optional[str] = ...) -> None: ...

class DeleteReferenceResponse(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: Reference
    def __init__(self, reference: _Optional[_Union[Reference, _Mapping]] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("reference_id", "policy")
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    policy: Policy
    def __init__(self, reference_id: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class SetOwnerPolicyRequest(_message.Message):
    __slots__ = ("owner", "policy")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    owner: str
    policy: Policy
    def __init__(self, owner: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class GetOwnerPolicyRequest(_message.Message):
    __slots__ = ("owner",)
    OWNER_FIELD_NUMBER: _ClassVar[int]
    owner: str
    def __init__(self, owner: _Optional[str] = ...) -> None: ...

class OwnerPolicy(_message.Message):
    __slots__ = ("owner", "policy")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    owner: str
    policy: Policy
    def __init__(self, owner: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("references", "audio_references", "video_references", "hours", "audio_hashes", "keyframes", "generation", "audio_index_bytes", "video_index_bytes", "audio_params", "video_params", "unowned_references", "held_conflicts")
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    VIDEO_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_HASHES_FIELD_NUMBER: _ClassVar[int]
    KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    VIDEO_INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_PARAMS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_PARAMS_FIELD_NUMBER: _ClassVar[int]
    UNOWNED_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    HELD_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    references: int
    audio_references: int
    video_references: int
    hours: float
    audio_hashes: int
    keyframes: int
    generation: int
    audio_index_bytes: int
    video_index_bytes: int
    audio_params: str
    video_params: str
    unowned_references: int
    held_conflicts: int
    def __init__(self, references: _Optional[int] = ..., audio_references: _Optional[int] = ..., video_references: _Optional[int] = ..., hours: _Optional[float] = ..., audio_hashes: _Optional[int] = ..., keyframes: _Optional[int] = ..., generation: _Optional[int] = ..., audio_index_bytes: _Optional[int] = ..., video_index_bytes: _Optional[int] = ..., audio_params: _Optional[str] = ..., video_params: _Optional[str] = ..., unowned_references: _Optional[int] = ..., held_conflicts: _Optional[int] = ...) -> None: ...

class SetOwnerRequest(_message.Message):
    __slots__ = ("reference_id", "owner")
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    owner: str
    def __init__(self, reference_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class OverlapRange(_message.Message):
    __slots__ = ("start_s", "end_s", "other_start_s", "other_end_s", "score")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    OTHER_START_S_FIELD_NUMBER: _ClassVar[int]
    OTHER_END_S_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    other_start_s: float
    other_end_s: float
    score: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., other_start_s: _Optional[float] = ..., other_end_s: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class Conflict(_message.Message):
    __slots__ = ("conflict_id", "kind", "status", "reference_id", "title", "owner", "other_reference_id", "other_title", "other_owner", "ranges", "created_at_unix_s", "resolved_by", "note")
    CONFLICT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OTHER_REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    OTHER_TITLE_FIELD_NUMBER: _ClassVar[int]
    OTHER_OWNER_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    conflict_id: int
    kind: str
    status: str
    reference_id: str
    title: str
    owner: str
    other_reference_id: str
    other_title: str
    other_owner: str
    ranges: _containers.RepeatedCompositeFieldContainer[OverlapRange]
    created_at_unix_s: float
    resolved_by: str
    note: str
    def __init__(self, conflict_id: _Optional[int] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., reference_id: _Optional[str] = ..., title: _Optional[str] = ..., owner: _Optional[str] = ..., other_reference_id: _Optional[str] = ..., other_title: _Optional[str] = ..., other_owner: _Optional[str] = ..., ranges: _Optional[_Iterable[_Union[OverlapRange, _Mapping]]] = ..., created_at_unix_s: _Optional[float] = ..., resolved_by: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListConflictsRequest(_message.Message):
    __slots__ = ("include_resolved",)
    INCLUDE_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    include_resolved: bool
    def __init__(self, include_resolved: _Optional[bool] = ...) -> None: ...

class ListConflictsResponse(_message.Message):
    __slots__ = ("conflicts",)
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    conflicts: _containers.RepeatedCompositeFieldContainer[Conflict]
    def __init__(self, conflicts: _Optional[_Iterable[_Union[Conflict, _Mapping]]] = ...) -> None: ...

class ResolveConflictRequest(_message.Message):
    __slots__ = ("conflict_id", "note")
    CONFLICT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    conflict_id: int
    note: str
    def __init__(self, conflict_id: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ClaimEvent(_message.Message):
    __slots__ = ("at_unix_s", "who", "party", "from_status", "to_status", "note", "request_id")
    AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    at_unix_s: float
    who: str
    party: str
    from_status: str
    to_status: str
    note: str
    request_id: str
    def __init__(self, at_unix_s: _Optional[float] = ..., who: _Optional[str] = ..., party: _Optional[str] = ..., from_status: _Optional[str] = ..., to_status: _Optional[str] = ..., note: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("claim_id", "status", "action", "reference_id", "title", "owner", "tenant", "upload_id", "request_id", "filename", "duration_s", "matches", "history", "created_at_unix_s", "updated_at_unix_s")
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    claim_id: str
    status: str
    action: str
    reference_id: str
    title: str
    owner: str
    tenant: str
    upload_id: str
    request_id: str
    filename: str
    duration_s: float
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    history: _containers.RepeatedCompositeFieldContainer[ClaimEvent]
    created_at_unix_s: float
    updated_at_unix_s: float
    def __init__(self, claim_id: _Optional[str] = ..., status: _Optional[str] = ..., action: _Optional[str] = ..., reference_id: _Optional[str] = ..., title: _Optional[str] = ..., owner: _Optional[str] = ..., tenant: _Optional[str] = ..., upload_id: _Optional[str] = ..., request_id: _Optional[str] = ..., filename: _Optional[str] = ..., duration_s: _Optional[float] = ..., matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[ClaimEvent, _Mapping]]] = ..., created_at_unix_s: _Optional[float] = ..., updated_at_unix_s: _Optional[float] = ...) -> None: ...

class ListClaimsRequest(_message.Message):
    __slots__ = ("status", "reference_id", "upload_id", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: str
    reference_id: str
    upload_id: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[str] = ..., reference_id: _Optional[str] = ..., upload_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListClaimsResponse(_message.Message):
    __slots__ = ("claims", "next_page_token")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    claims: _containers.RepeatedCompositeFieldContainer[Claim]
    next_page_token: str
    def __init__(self, claims: _Optional[_Iterable[_Union[Claim, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetClaimRequest(_message.Message):
    __slots__ = ("claim_id",)
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    claim_id: str
    def __init__(self, claim_id: _Optional[str] = ...) -> None: ...

class ResolveClaimRequest(_message.Message):
    __slots__ = ("claim_id", "status", "note")
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    claim_id: str
    status: str
    note: str
    def __init__(self, claim_id: _Optional[str] = ..., status: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SetWebhookRequest(_message.Message):
    __slots__ = ("tenant", "url", "secret")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    url: str
    secret: str
    def __init__(self, tenant: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class GetWebhookRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("tenant", "url", "secret", "pending", "failed")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    url: str
    secret: str
    pending: int
    failed: int
    def __init__(self, tenant: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ..., pending: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...
