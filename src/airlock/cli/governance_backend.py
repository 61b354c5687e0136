"""Where the governance commands send their work: the local services, or a server over REST.

The CLI's transport for policy, check, approve, reject, key, sign, signatures,
eval and notes, and for the approvals, evaluations and signature checks that ``show``,
``diff`` and ``verify REF`` print. ``open_governance()`` picks the side once
(:func:`airlock.cli.backend.open_side`); both sides take the same arguments and return
the same frozen values, and the server's errors come back as the same classes and
messages, so a command renders either one identically.

What runs where, remotely:

- ``sign``: the bundle is made on this machine (the private key never travels) and
  the server checks and stores it (``POST /releases/{ref}/signatures``).
- ``signatures --bundle --path``: the folder is hashed here and checked against the
  server's trusted keys.
- ``eval``: the suite is read and checked here, then the server runs it. The server
  holds the verified bytes and the runtimes a release is served with (upstream
  endpoints, registered scorers), and the run it records gates promotion: a run made
  on a laptop would be neither reproducible there nor trustworthy to the policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airlock.client import Client
    from airlock.core.evalsuite import Suite
    from airlock.core.manifest import Manifest
    from airlock.core.policy import PolicyVerdict
    from airlock.core.records import EvalRunSummary, PolicyVersion, TrustedKey
    from airlock.services.evals import EvalRun
    from airlock.services.governance import (
        DecisionResult,
        GovernanceSummary,
        PolicyChange,
        SuiteComparison,
    )
    from airlock.services.signatures import AddedSignature, SignatureCheck
    from airlock.services.workspace import Workspace


class GovernanceSide(Protocol):
    """What the governance commands call; local and remote alike."""

    remote: bool

    def set_policy(self, name: str, document: str, *, reason: str) -> PolicyChange: ...

    def policy(self, name: str, version: int | None) -> PolicyVersion: ...

    def policy_history(self, name: str | None) -> list[PolicyVersion]: ...

    def check(self, ref: str, stage: str, *, policy_name: str | None) -> PolicyVerdict: ...

    def approve(self, ref: str, *, stage: str, comment: str) -> DecisionResult: ...

    def reject(self, ref: str, *, stage: str, comment: str) -> DecisionResult: ...

    def keys(self) -> list[TrustedKey]: ...

    def trust_key(self, public_key: str, *, name: str) -> TrustedKey: ...

    def revoke_key(self, name: str, *, reason: str) -> TrustedKey: ...

    def signing_subject(self, ref: str) -> tuple[Manifest, str]:
        """What a signature covers: the release's manifest and digest (checked)."""
        ...

    def add_signature(self, ref: str, bundle: str) -> AddedSignature: ...

    def signatures(self, ref: str) -> list[SignatureCheck]: ...

    def check_folder(self, bundle: str, folder: Path) -> SignatureCheck: ...

    def evaluate(
        self, ref: str, suite: Suite, *, baseline: str | None, confidence: float
    ) -> EvalRun: ...

    def evaluation(self, run_id: int) -> EvalRunSummary: ...

    def evaluations(self, ref: str) -> list[EvalRunSummary]:
        """A release's stored runs, oldest first."""
        ...

    def notes(self, ref: str, *, stage: str, against: str | None) -> str: ...

    def summary(self, ref: str) -> GovernanceSummary:
        """Approvals, evaluation runs and signature checks of a release (for ``show``)."""
        ...

    def eval_comparison(self, old: str, new: str) -> list[SuiteComparison]: ...


@contextmanager
def open_governance() -> Iterator[GovernanceSide]:
    """The server's governance when one is configured, else the local workspace's."""
    from airlock.cli.backend import open_side

    local: Callable[[Workspace], GovernanceSide] = LocalGovernance
    remote: Callable[[Client], GovernanceSide] = RemoteGovernance
    with open_side(local, remote) as side:
        yield side


# -- local --------------------------------------------------------------------------------


class LocalGovernance:
    remote = False

    def __init__(self, ws: Workspace) -> None:
        from airlock.services.governance import Governance

        self.ws = ws
        self.gov = Governance(ws)

    def _actor(self) -> Any:
        from airlock.cli.common import actor

        return actor(self.ws)

    def set_policy(self, name: str, document: str, *, reason: str) -> PolicyChange:
        return self.gov.set_policy(name, document, actor=self._actor(), reason=reason)

    def policy(self, name: str, version: int | None) -> PolicyVersion:
        return self.gov.policy(name, version)[0]

    def policy_history(self, name: str | None) -> list[PolicyVersion]:
        return self.gov.policy_history(name)

    def check(self, ref: str, stage: str, *, policy_name: str | None) -> PolicyVerdict:
        return self.gov.check(ref, stage, policy_name=policy_name)

    def approve(self, ref: str, *, stage: str, comment: str) -> DecisionResult:
        return self.gov.approve(ref, stage=stage, actor=self._actor(), comment=comment)

    def reject(self, ref: str, *, stage: str, comment: str) -> DecisionResult:
        return self.gov.reject(ref, stage=stage, actor=self._actor(), comment=comment)

    def keys(self) -> list[TrustedKey]:
        return self.gov.keys()

    def trust_key(self, public_key: str, *, name: str) -> TrustedKey:
        return self.gov.trust_key(public_key, name=name, actor=self._actor())

    def revoke_key(self, name: str, *, reason: str) -> TrustedKey:
        return self.gov.revoke_key(name, actor=self._actor(), reason=reason)

    def signing_subject(self, ref: str) -> tuple[Manifest, str]:
        row = self.gov.registry.resolve(ref)
        return row.manifest(), row.digest

    def add_signature(self, ref: str, bundle: str) -> AddedSignature:
        return self.gov.add_signature(ref, bundle, actor=self._actor())

    def signatures(self, ref: str) -> list[SignatureCheck]:
        return self.gov.verify_signatures(ref)

    def check_folder(self, bundle: str, folder: Path) -> SignatureCheck:
        return self.gov.signatures.verify_folder(bundle, folder)

    def evaluate(
        self, ref: str, suite: Suite, *, baseline: str | None, confidence: float
    ) -> EvalRun:
        from airlock.services.evals import Evals

        return Evals(self.ws).run(
            ref, suite, actor=self._actor(), baseline=baseline, confidence=confidence
        )

    def evaluation(self, run_id: int) -> EvalRunSummary:
        from airlock.services.evals import Evals

        return Evals(self.ws).record(run_id)

    def evaluations(self, ref: str) -> list[EvalRunSummary]:
        from airlock.services.evals import Evals

        return Evals(self.ws).runs(ref)

    def notes(self, ref: str, *, stage: str, against: str | None) -> str:
        from airlock.services.notes import ReleaseNotes

        return ReleaseNotes(self.ws).render(ref, stage=stage, against=against)

    def summary(self, ref: str) -> GovernanceSummary:
        return self.gov.summary(ref)

    def eval_comparison(self, old: str, new: str) -> list[SuiteComparison]:
        return self.gov.eval_comparison(old, new)


# -- remote --------------------------------------------------------------------------------


class RemoteGovernance:
    """The same calls through the REST API; JSON parsed back into the services' values.

    Row ids the API does not carry (a release's, an approval's ``release_id``) are 0.
    """

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def set_policy(self, name: str, document: str, *, reason: str) -> PolicyChange:
        from airlock.core.policy import parse_policy
        from airlock.services.governance import PolicyChange

        out = self.client.set_policy(name, document, reason=reason)
        row = _policy_version(out["policy"])
        return PolicyChange(row, parse_policy(row.document), bool(out["created"]), out["previous"])

    def policy(self, name: str, version: int | None) -> PolicyVersion:
        return _policy_version(self.client.policy(name, version=version))

    def policy_history(self, name: str | None) -> list[PolicyVersion]:
        return [_policy_version(p) for p in self.client.policy_history(name)]

    def check(self, ref: str, stage: str, *, policy_name: str | None) -> PolicyVerdict:
        from airlock.core.policy import (
            PolicyVerdict,
            RiskMatch,
            RolloutRequirements,
            RuleResult,
            parse_policy,
        )

        out = self.client.check(ref, stage=stage, policy=policy_name)
        risk: tuple[RiskMatch, ...] = ()
        if out["risk_classes"]:  # what each class requires: from the policy version judged
            name = policy_name or str(out["ref"]).rpartition("@")[0]
            row = self.policy(name, out["policy_version"])
            require = {rc.name: rc.require for rc in parse_policy(row.document).risk_classes}
            risk = tuple(
                RiskMatch(m["name"], tuple(m["reasons"]), require[m["name"]])
                for m in out["risk_classes"]
            )
        rollout = out["rollout"]
        return PolicyVerdict(
            ref=out["ref"],
            stage=out["stage"],
            policy_version=out["policy_version"],
            results=tuple(_value(RuleResult, r) for r in out["rules"]),
            risk=risk,
            rollout=RolloutRequirements(
                float(rollout["min_canary_minutes"]),
                bool(rollout["shadow_first"]),
                tuple(rollout["reasons"]),
            ),
            baseline_ref=out["baseline"],
        )

    def approve(self, ref: str, *, stage: str, comment: str) -> DecisionResult:
        return _decision(self.client.approve(ref, stage=stage, comment=comment))

    def reject(self, ref: str, *, stage: str, comment: str) -> DecisionResult:
        return _decision(self.client.reject(ref, stage=stage, comment=comment))

    def keys(self) -> list[TrustedKey]:
        return [_key(k) for k in self.client.keys()]  # noqa: SIM118 (a method, not a dict)

    def trust_key(self, public_key: str, *, name: str) -> TrustedKey:
        return _key(self.client.trust_key(public_key, name=name))

    def revoke_key(self, name: str, *, reason: str) -> TrustedKey:
        return _key(self.client.revoke_key(name, reason=reason))

    def signing_subject(self, ref: str) -> tuple[Manifest, str]:
        from airlock.cli.backend import _manifest

        out = self.client.release(ref)
        return _manifest(out["manifest"], out["digest"]), str(out["digest"])

    def add_signature(self, ref: str, bundle: str) -> AddedSignature:
        from airlock.services.signatures import AddedSignature, SignResult

        out = self.client.add_signature(ref, bundle)
        result: SignResult = _value(SignResult, out["result"])
        return AddedSignature(result, bool(out["trusted"]))

    def signatures(self, ref: str) -> list[SignatureCheck]:
        return [_signature(c) for c in self.client.signatures(ref)["signatures"]]

    def check_folder(self, bundle: str, folder: Path) -> SignatureCheck:
        from airlock.services.signatures import check_folder

        return check_folder(bundle, folder, self.keys())

    def evaluate(
        self, ref: str, suite: Suite, *, baseline: str | None, confidence: float
    ) -> EvalRun:
        # The suite travels as its canonical JSON: the name it took from the file's stem
        # (and a JSONL file's cases) reach the server as read here.
        text = json.dumps(suite.model_dump(mode="json", by_alias=True), ensure_ascii=False)
        out = self.client.evaluate(ref, text, baseline=baseline, confidence=confidence)
        return eval_run_of(out)

    def evaluation(self, run_id: int) -> EvalRunSummary:
        return _eval_summary(self.client.evaluation(run_id))

    def evaluations(self, ref: str) -> list[EvalRunSummary]:
        # The list leaves out each run's record, which the tables read: one call per run.
        return [self.evaluation(int(r["id"])) for r in self.client.evaluations(ref)]

    def notes(self, ref: str, *, stage: str, against: str | None) -> str:
        return self.client.notes(ref, stage=stage, against=against)

    def summary(self, ref: str) -> GovernanceSummary:
        from airlock.services.governance import GovernanceSummary

        approvals = tuple(_approval(a) for a in self.client.approvals(ref))
        runs = tuple(self.evaluations(ref))
        signed = self.client.signatures(ref)
        checks = tuple(_signature(c) for c in signed["signatures"])
        return GovernanceSummary(str(signed["ref"]), approvals, runs, checks)

    def eval_comparison(self, old: str, new: str) -> list[SuiteComparison]:
        from airlock.services.governance import SuiteComparison

        def run(out: Mapping[str, Any] | None) -> EvalRunSummary | None:
            return None if out is None else self.evaluation(int(out["id"]))

        return [
            SuiteComparison(c["suite"], run(c["old"]), run(c["new"]), run(c["paired"]))
            for c in self.client.eval_comparison(new, against=old)
        ]


# -- rebuilding values from API bodies ------------------------------------------------------


def _value(cls: Any, data: Mapping[str, Any]) -> Any:
    from airlock.cli.backend import _value as value

    return value(cls, data)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _policy_version(out: Mapping[str, Any]) -> PolicyVersion:
    from airlock.core.records import PolicyVersion

    return PolicyVersion(
        id=0,  # the server's row id: not part of the API
        name=out["name"],
        version=int(out["version"]),
        document=out["document"],
        digest=out["digest"],
        reason=out["reason"],
        created_at=datetime.fromisoformat(out["created_at"]),
        created_by=out["created_by"],
        event_seq=out["event_seq"],
    )


def _approval(out: Mapping[str, Any]) -> Any:
    from airlock.core.records import Approval

    return Approval(
        id=int(out["id"]),
        release_id=0,
        release_digest=out["release_digest"],
        stage=out["stage"],
        decision=out["decision"],
        actor=out["actor"],
        role=out["role"],
        comment=out["comment"],
        at=datetime.fromisoformat(out["at"]),
        event_seq=out["event_seq"],
    )


def _decision(out: Mapping[str, Any]) -> DecisionResult:
    from airlock.services.governance import DecisionResult

    approval = _approval(out["approval"]) if out.get("approval") else None
    return DecisionResult(
        out["ref"], out["stage"], out["decision"], bool(out["recorded"]), approval
    )


def _key(out: Mapping[str, Any]) -> TrustedKey:
    from airlock.core.records import TrustedKey

    return TrustedKey(
        key_id=out["key_id"],
        name=out["name"],
        public_key=out["public_key"],
        added_at=datetime.fromisoformat(out["added_at"]),
        added_by=out["added_by"],
        revoked_at=_time(out["revoked_at"]),
        revoked_by=out["revoked_by"],
    )


def _signature(out: Mapping[str, Any]) -> SignatureCheck:
    from airlock.services.signatures import SignatureCheck

    return SignatureCheck(
        key_id=out["key_id"],
        key_name=out["key_name"],
        signed_by=out["signed_by"],
        at=_time(out["at"]),
        valid=bool(out["valid"]),
        why=out["why"],
    )


def _eval_summary(out: Mapping[str, Any]) -> EvalRunSummary:
    """A stored run from ``GET /evaluations/{id}``: its record stored as the catalog holds it."""
    from airlock.core.records import EvalRunSummary

    record = out["record"]
    return EvalRunSummary(
        id=int(out["id"]),
        release_id=0,
        release_ref=out["ref"],
        suite=out["suite"],
        suite_digest=out["suite_digest"],
        baseline_release_id=0 if record.get("baseline") else None,
        cases=int(out["cases"]),
        pass_rate=float(out["pass_rate"]),
        mean_score=float(out["mean_score"]),
        baseline_pass_rate=out["baseline_pass_rate"],
        p_value=out["p_value"],
        result=json.dumps(record, sort_keys=True, ensure_ascii=False),
        actor=out["actor"],
        started_at=datetime.fromisoformat(out["started_at"]),
        finished_at=datetime.fromisoformat(out["finished_at"]),
        event_seq=out["event_seq"],
    )


def eval_run_of(out: Mapping[str, Any]) -> EvalRun:
    """The run ``airlock eval`` prints, from the stored run the server answers with."""
    from airlock.services.evals import stored_run

    return stored_run(_eval_summary(out))
