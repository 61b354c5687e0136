"""The catalog's tables (SQLAlchemy Core). The schema changes only through migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every back end (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", String(128), nullable=False),
    Column("digest", String(71), nullable=False, unique=True),
    Column("content_key", String(71), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("author", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("parameters", BigInteger, nullable=True),
    Column("has_pickle", Boolean, nullable=False, default=False),
    UniqueConstraint("model_id", "version", name="uq_releases_model_version"),
)

release_files = Table(
    "release_files",
    metadata,
    Column("release_id", Integer, ForeignKey("releases.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(71), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("kind", String(32), nullable=True),
    Index("ix_release_files_digest", "digest"),
)

components = Table(
    "components",
    metadata,
    Column("release_id", Integer, ForeignKey("releases.id"), primary_key=True),
    Column("role", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # ref | digest | path
    Column("target", String(1024), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("release_id", Integer, ForeignKey("releases.id"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("uri", String(2048), nullable=True),
    Column("digest", String(71), nullable=True),
    Index("ix_datasets_digest", "digest"),
)

lineage = Table(
    "lineage",
    metadata,
    Column("release_id", Integer, ForeignKey("releases.id"), primary_key=True),
    Column("parent_ref", String(256), nullable=True),
    Column("parent_release_id", Integer, ForeignKey("releases.id"), nullable=True),
    Column("code_repo", String(1024), nullable=True),
    Column("code_commit", String(128), nullable=True),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_release_id", Integer, ForeignKey("releases.id"), nullable=True),
    Column("to_release_id", Integer, ForeignKey("releases.id"), nullable=True),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    Index("ix_alias_history_model_alias", "model_id", "alias"),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),  # ISO-8601 text: hashed exactly as stored
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_events_action", "action"),
    Index("ix_events_subject", "subject"),
)

# -- governance (migration 0003_governance) ----------------------------------------------

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # public part of the token, e.g. tk_3f9a2b1c
    Column("username", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the whole token
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=True),
    Index("ix_api_tokens_username", "username"),
)

policies = Table(
    "policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),  # a model or a service
    Column("version", Integer, nullable=False),
    Column("document", Text, nullable=False),  # the YAML as written (comments kept)
    Column("digest", String(71), nullable=False),  # of the parsed policy's canonical JSON
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    UniqueConstraint("name", "version", name="uq_policies_name_version"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("release_digest", String(71), nullable=False),
    Column("stage", String(128), nullable=False),
    Column("decision", String(16), nullable=False),  # approve | reject
    Column("actor", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    Index("ix_approvals_release", "release_id"),
)

trusted_keys = Table(
    "trusted_keys",
    metadata,
    Column("key_id", String(71), primary_key=True),  # sha256 of the raw public key
    Column("name", String(128), nullable=False, unique=True),
    Column("public_key", Text, nullable=False),  # PEM
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", String(128), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=True),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("release_digest", String(71), nullable=False),
    Column("key_id", String(71), nullable=False),
    Column("bundle", Text, nullable=False),  # DSSE envelope over an in-toto statement (JSON)
    Column("signed_by", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    UniqueConstraint("release_id", "key_id", name="uq_signatures_release_key"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("suite", String(128), nullable=False),
    Column("suite_digest", String(71), nullable=False),
    Column("baseline_release_id", Integer, ForeignKey("releases.id"), nullable=True),
    Column("cases", Integer, nullable=False),
    Column("pass_rate", Float, nullable=False),
    Column("mean_score", Float, nullable=False),
    Column("baseline_pass_rate", Float, nullable=True),
    Column("p_value", Float, nullable=True),
    Column("result", Text, nullable=False),  # JSON: per-case outcomes and the comparison
    Column("actor", String(128), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    Index("ix_eval_runs_release_suite", "release_id", "suite"),
)

# -- serving (migration 0002_serving) -------------------------------------------------

services = Table(
    "services",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("stable_release", String(256), nullable=False),
    Column("plan", Text, nullable=False),  # TrafficPlan.to_dict() as canonical JSON
    Column("generation", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

service_plans = Table(
    "service_plans",
    metadata,
    Column("service_id", Integer, ForeignKey("services.id"), primary_key=True),
    Column("generation", BigInteger, primary_key=True, autoincrement=False),
    Column("plan", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event_seq", BigInteger, nullable=True),
)

service_opt_outs = Table(
    "service_opt_outs",
    metadata,
    Column("service_id", Integer, ForeignKey("services.id"), primary_key=True),
    Column("user_key", String(256), primary_key=True),
    Column("actor", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

release_telemetry = Table(
    "release_telemetry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(128), nullable=False),
    Column("release", String(256), nullable=False),
    Column("traffic", String(8), nullable=False),  # live | shadow
    Column("gateway", String(256), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("errors_by_kind", Text, nullable=False),  # JSON {kind: count}
    Column("guardrail_flags", BigInteger, nullable=False),
    Column("fallbacks", BigInteger, nullable=False),
    Column("shadow_drops", BigInteger, nullable=False),
    Column("tokens_in", BigInteger, nullable=False),
    Column("tokens_out", BigInteger, nullable=False),
    Column("feedback_sum", Float, nullable=False),
    Column("feedback_count", BigInteger, nullable=False),
    Column("latency_histogram", Text, nullable=False),  # JSON list over LATENCY_BUCKETS_MS
    Index("ix_release_telemetry_service_window", "service", "window_start"),
)

shadow_samples = Table(
    "shadow_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(128), nullable=False),
    Column("release", String(256), nullable=False),
    Column("primary_release", String(256), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("output", Text, nullable=False),
    Column("primary_output", Text, nullable=False),
    Column("error_kind", String(64), nullable=True),
    Index("ix_shadow_samples_service_at", "service", "at"),
)

# -- rollouts (migration 0004_rollouts) -----------------------------------------------

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(128), nullable=False),
    # = service while the rollout is live, NULL once it ended: the unique constraint
    # is what makes "one rollout per service at a time" hold across processes.
    Column("active_service", String(128), nullable=True),
    Column("kind", String(16), nullable=False),  # rollout | drill
    Column("candidate", String(256), nullable=False),
    Column("stable", String(256), nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # the validated spec as canonical JSON
    Column("phase", String(16), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("state", Text, nullable=False),  # RolloutState.to_dict() as JSON
    Column("version", BigInteger, nullable=False),  # bumped by every transition (CAS)
    Column("last_verdict", Text, nullable=True),  # the newest AnalysisVerdict as JSON
    Column("verdict_at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("active_service", name="uq_rollouts_active_service"),
    Index("ix_rollouts_service", "service"),
)

rollout_history = Table(
    "rollout_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),  # start advance hold pause resume promote ...
    Column("actor", String(128), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("candidate_weight", Integer, nullable=False),  # basis points after the action
    Column("reason", Text, nullable=False),
    Column("verdict", Text, nullable=True),  # AnalysisVerdict.to_dict(): effects and CIs
    Column("plan_generation", BigInteger, nullable=True),
    Column("event_seq", BigInteger, nullable=True),
    Index("ix_rollout_history_rollout", "rollout_id", "id"),
)

controller_leases = Table(
    "controller_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

drills = Table(
    "drills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(128), nullable=False),
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), nullable=True),
    Column("release", String(256), nullable=False),  # the faulty release
    Column("stable", String(256), nullable=False),
    Column("fault", Text, nullable=False),  # JSON: the faults section of its config
    Column("outcome", String(16), nullable=False),  # detected | missed
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("detect_seconds", Float, nullable=True),
    Column("revert_seconds", Float, nullable=True),
    Column("requests", BigInteger, nullable=False),
    Column("faulty_requests", BigInteger, nullable=False),  # routed to the faulty release
    Column("faulted_requests", BigInteger, nullable=False),  # of those, where the fault hit
    Column("result", Text, nullable=False),  # JSON: everything measured
    Column("actor", String(128), nullable=False),
    Column("event_seq", BigInteger, nullable=True),
    Index("ix_drills_service", "service"),
)

# -- telemetry detail (migration 0007_telemetry_detail) -----------------------------------

# JSON written by airlock.core.telemetry.detail_json: per-cluster counters, fine latency
# and time-to-first-token cells, custom metrics; NULL for rows flushed before it existed.
release_telemetry.append_column(Column("detail", Text, nullable=True))

# -- gateway access (migration 0006_gateway_keys) ------------------------------------------

gateway_keys = Table(
    "gateway_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public part of the key: ak-<id>-<secret>
    Column("service", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the whole key
    Column("can_pin", Boolean, nullable=False),
    Column("can_opt_out", Boolean, nullable=False),
    Column("can_feedback", Boolean, nullable=False),
    Column("rpm", BigInteger, nullable=True),
    Column("tpm", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=True),
    UniqueConstraint("service", "name", name="uq_gateway_keys_service_name"),
)

gateway_secrets = Table(
    "gateway_secrets",
    metadata,
    Column("name", String(64), primary_key=True),  # e.g. response-ids
    Column("secret", String(128), nullable=False),  # hex; shared by every gateway replica
    Column("created_at", UTCDateTime, nullable=False),
)

gateway_sync_versions = Table(
    "gateway_sync_versions",
    metadata,
    Column("topic", String(160), primary_key=True),  # "keys", "opt_outs:<service>"
    Column("version", BigInteger, nullable=False),
)

# -- integrity (migration 0005_integrity) ---------------------------------------------
# approvals.turn: the n-th decision of one person on one release and stage; unique, so two
# concurrent identical decisions cannot both be recorded. events.prev_hash: unique, so two
# events can never extend the same predecessor (the chain cannot fork).

approvals.append_column(Column("turn", Integer, nullable=False))
approvals.append_constraint(
    UniqueConstraint(
        "release_id", "stage", "actor", "turn", name="uq_approvals_release_stage_actor_turn"
    )
)
Index("uq_events_prev_hash", events.c.prev_hash, unique=True)

# -- webhooks (migration 0008_webhooks) -----------------------------------------------------
# Subscriptions to audit actions; one delivery per (subscription, event), queued by the
# dispatcher, which reads the audit log after a stored cursor; every attempt is logged.

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),  # wh-<hex>
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list: actions, "prefix.*" or "*"
    Column("format", String(16), nullable=False),  # json | slack
    Column("secret", String(256), nullable=False),  # HMAC key; the server must read it
    Column("after_seq", BigInteger, nullable=False),  # events after this one are delivered
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("removed_at", UTCDateTime, nullable=True),
    Column("removed_by", String(128), nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid: the X-Airlock-Delivery header
    Column("webhook_id", String(32), ForeignKey("webhooks.id"), nullable=False),
    Column("event_seq", BigInteger, nullable=False),  # 0: a test delivery
    Column("action", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("payload", Text, nullable=True),  # a test delivery's body; else built from the event
    UniqueConstraint("webhook_id", "event_seq", name="uq_webhook_deliveries_webhook_event"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", Integer, nullable=True),  # HTTP status; NULL: no response
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id"),
)

webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(32), primary_key=True),  # "events"
    Column("seq", BigInteger, nullable=False),  # the last audit event the dispatcher queued
)

# -- transcripts (migration 0009_transcripts) ---------------------------------------------
# Prompts and answers of services that opted in (redacted before they are written), kept
# for the service's retention; feedback scores apart, keyed by response id, so a score
# flushed by one replica joins an answer flushed by another.

transcript_settings = Table(
    "transcript_settings",
    metadata,
    Column("service", String(128), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("retention_s", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

transcripts = Table(
    "transcripts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("response_id", String(1024), nullable=False, unique=True),
    Column("service", String(128), nullable=False),
    Column("release", String(256), nullable=False),  # the release that wrote the answer
    Column("arm", String(16), nullable=False),  # stable | candidate | pinned | fallback
    Column("cluster", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # chat | completion
    Column("at", UTCDateTime, nullable=False),
    Column("prompt", Text, nullable=False),  # JSON: messages (chat) or text, redacted
    Column("answer", Text, nullable=False),  # redacted
    Column("scores", Text, nullable=True),  # JSON {name: value}, filled in by scorers
    Column("judge", String(256), nullable=True),  # the judge release that scored it
    Column("gateway", String(256), nullable=False),
    Index("ix_transcripts_service_at", "service", "at"),
)

transcript_feedback = Table(
    "transcript_feedback",
    metadata,
    Column("response_id", String(1024), primary_key=True),
    Column("service", String(128), nullable=False),
    Column("score", Float, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON {name: value in [0, 1]}
    Column("issued_at", UTCDateTime, nullable=False),  # when the response was given
    Column("at", UTCDateTime, nullable=False),  # when the (latest) score arrived
    Index("ix_transcript_feedback_service_issued", "service", "issued_at"),
)

# -- scale (migration 0010_scale_indexes) ----------------------------------------------------
# releases.version_key: the semantic-version order as text (airlock.core.paging.version_key),
# written with each release and back-filled by the migration; keyset pages of a model's
# releases walk (model_id, version_key, id). The other indexes serve pages and retention.

releases.append_column(Column("version_key", String(512), nullable=True))
Index("ix_releases_model_version_key", releases.c.model_id, releases.c.version_key, releases.c.id)
Index("ix_releases_created_at", releases.c.created_at, releases.c.id)
Index(
    "ix_alias_history_model_alias_id",
    alias_history.c.model_id,
    alias_history.c.alias,
    alias_history.c.id,
)
Index("ix_alias_history_model_id", alias_history.c.model_id, alias_history.c.id)
Index("ix_events_actor", events.c.actor, events.c.seq)
Index("ix_events_subject_seq", events.c.subject, events.c.seq)
Index("ix_release_telemetry_window_end", release_telemetry.c.window_end)
Index("ix_rollout_history_at", rollout_history.c.at)

# -- service quality (migration 0011_service_quality) -----------------------------------------
# A service's default online-quality settings (what a rollout on it scores when its spec names
# none), and the pairs a pairwise judge compared in shadow phases: outcome, releases and judge
# always; prompt and answers (redacted) only for services that keep transcripts, deleted with
# them when their retention passes.

service_quality = Table(
    "service_quality",
    metadata,
    Column("service", String(128), primary_key=True),
    Column("settings", Text, nullable=False),  # QualitySettings as canonical JSON
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

judged_pairs = Table(
    "judged_pairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(128), nullable=False),
    Column("request_id", String(1024), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("stable_release", String(256), nullable=False),
    Column("candidate_release", String(256), nullable=False),
    Column("judge", String(256), nullable=False),
    Column("outcome", String(8), nullable=False),  # the candidate's: win | tie | loss
    Column("prompt", Text, nullable=False),  # redacted (JSON, as transcripts store it)
    Column("stable_answer", Text, nullable=False),  # redacted
    Column("candidate_answer", Text, nullable=False),  # redacted
    Column("gateway", String(256), nullable=False),
    Index("ix_judged_pairs_service_id", "service", "id"),
    Index("ix_judged_pairs_service_at", "service", "at"),
)

# -- list pages (the 0012_*list_indexes migrations, one per head that made the table) ---------
# Each REST list walks one index in its order from the cursor on (catalog/keyset.py).

Index("ix_approvals_release_at", approvals.c.release_id, approvals.c.at, approvals.c.id)
Index("ix_eval_runs_release_id", eval_runs.c.release_id, eval_runs.c.id)
Index("ix_trusted_keys_added_at", trusted_keys.c.added_at, trusted_keys.c.key_id)
Index("ix_rollouts_service_id", rollouts.c.service, rollouts.c.id)
Index("ix_drills_service_id", drills.c.service, drills.c.id)
Index("ix_webhooks_created_at", webhooks.c.created_at, webhooks.c.id)
_DELIVERY_ORDER = (
    webhook_deliveries.c.created_at,
    webhook_deliveries.c.event_seq,
    webhook_deliveries.c.id,
)
Index("ix_webhook_deliveries_created", *_DELIVERY_ORDER)
Index("ix_webhook_deliveries_webhook", webhook_deliveries.c.webhook_id, *_DELIVERY_ORDER)
