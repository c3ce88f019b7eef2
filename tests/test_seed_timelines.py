"""Each seed runbook's own timeline, as a stack file would record it, through the gap check.

Each test writes down what the runbook does and when, shows the gap the check finds in it (the
interval in which verifiers, or pods, following the cache rules reject something valid), and then
runs the same procedure through the rotation commands, which leave no gap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyrotation.commands import transitions
from keyrotation.commands.records import Publications
from keyrotation.config import StackConfig, parse
from keyrotation.errors import CommandError
from keyrotation.lifecycle import Gap, keyset_gaps
from tests.deployed import deployed

T = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def t(minutes: float = 0, *, hours: float = 0, days: float = 0) -> datetime:
    return T + timedelta(minutes=minutes, hours=hours, days=days)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def stack(name: str, generations: list[dict], *, purpose="sign", algorithm="EdDSA", **timings) -> StackConfig:
    keyset = {"purpose": purpose, "algorithm": algorithm, "generations": [
        {k: iso(v) if isinstance(v, datetime) else v for k, v in g.items()} for g in generations]}
    if purpose == "sign":
        keyset["kid"] = name + "-{generation}"
    return parse({"environment": "seed", "keysets": {name: {**keyset, **timings}}},
                 stack_file="Pulumi.seed.yaml")


def gaps(config: StackConfig, published_at: dict[str, datetime] | None = None) -> list[tuple]:
    [keyset] = config.keysets.values()
    return [_row(g) for g in keyset_gaps(keyset, published_at)]


def _row(g: Gap) -> tuple:
    return g.generation, g.kind, g.start, g.end, g.intended


def gap_free_rotation(config: StackConfig, name: str, start: datetime, *,
                      retire_after: timedelta) -> StackConfig:
    """The scheduled rotation through the commands: rotate, promote at the lead, retire after the overlap."""
    config = transitions.rotate(config, name, now=start, generation_id="next").stack
    lead = config.keysets[name].timings.publish_lead
    old = config.keysets[name].active.id
    config = transitions.promote(config, name, now=start + lead, record=deployed(config, name)).stack
    return transitions.retire(config, name, old, now=start + lead + retire_after,
                           record=deployed(config, name)).stack


# ---------------------------------------------------------------------------------------------
# 000 gateway: JWKS updated and the env switched in the same minute, old key deprecated after 24h


def test_gateway_runbook_switches_before_verifiers_can_have_the_new_jwks():
    # Step 4 pushes the JWKS at 09:00, step 5 `kubectl set env` the same minute (09:00:30);
    # step 6 removes the old key after the 24h grace period. Gateway verifiers cache the JWKS 5 min.
    config = stack("atlas-gateway", [
        {"id": "old", "state": "retired", "createdAt": t(days=-7), "activatedAt": t(days=-7, minutes=10),
         "retiringAt": t(0.5), "retiredAt": t(0.5, hours=24)},
        {"id": "new", "state": "active", "createdAt": t(0), "activatedAt": t(0.5)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    # A token signed by the new key from 08:59:30 (a signer's clock a minute fast) meets verifiers
    # still holding the JWKS fetched just before 09:00 until 09:05: 5m30s of rejected logins.
    assert gaps(config) == [("new", "published-too-late", t(-0.5), t(5), False)]


def test_gateway_runbook_rollback_removes_the_new_key_while_its_tokens_live():
    # Rollback procedure: env back to the old key and the new key deleted from the JWKS, 30 min in.
    config = stack("atlas-gateway", [
        {"id": "old", "state": "active", "createdAt": t(days=-7), "activatedAt": t(days=-7, minutes=10)},
        {"id": "new", "state": "retired", "createdAt": t(0), "activatedAt": t(6),
         "retiringAt": t(30), "retiredAt": t(30)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    # Tokens the new key signed (until gateway pods stop using it, up to 6 min later) stay valid an hour.
    assert gaps(config) == [("new", "removed-too-early", t(30), t(30 + 5 + 1 + 60), False)]
    # The commands: `rollback` keeps the new key published as retiring for the overlap: no gap.
    config = stack("atlas-gateway", [
        {"id": "old", "state": "active", "createdAt": t(days=-7), "activatedAt": t(days=-7, minutes=10)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    config = transitions.rotate(config, "atlas-gateway", now=t(0), generation_id="new").stack
    config = transitions.promote(config, "atlas-gateway", now=t(6),
                              record=deployed(config, "atlas-gateway")).stack
    config = transitions.rollback(config, "atlas-gateway", now=t(30),
                               record=deployed(config, "atlas-gateway")).stack
    assert config.keysets["atlas-gateway"].active.id == "old"
    config = transitions.retire(config, "atlas-gateway", "new", now=t(30 + 66),
                             record=deployed(config, "atlas-gateway")).stack
    assert gaps(config) == []


def test_gateway_the_commands_weekly_rotation_has_no_gap():
    config = stack("atlas-gateway", [
        {"id": "old", "state": "active", "createdAt": t(days=-7), "activatedAt": t(days=-7, minutes=10)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600, maxAgeDays=7)
    assert gaps(gap_free_rotation(config, "atlas-gateway", t(0), retire_after=timedelta(hours=24))) == []


# ---------------------------------------------------------------------------------------------
# 001 audit signing: signers.json updated, then the deploy in quick succession; 24-72h overlap


def audit(retire_after: timedelta, lifetime: int) -> StackConfig:
    return stack("audit-signing", [
        {"id": "old", "state": "retired", "createdAt": t(days=-80), "activatedAt": t(days=-80, hours=2),
         "retiringAt": t(2), "retiredAt": t(2) + retire_after},
        {"id": "new", "state": "active", "createdAt": t(0), "activatedAt": t(2)},
    ], algorithm="RS256", publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=lifetime)


def test_audit_runbook_deploys_two_minutes_after_publishing_signers_json():
    # Step 3 commits and publishes signers.json at 09:00; step 4 redeploys agent-manager at 09:02.
    # Verifiers fetching the registry with a 5-minute cache reject new audit events until 09:05.
    assert gaps(audit(timedelta(hours=24), 3600)) == [("new", "published-too-late", t(1), t(5), False)]
    assert gaps(audit(timedelta(hours=72), 3600)) == gaps(audit(timedelta(hours=24), 3600))


def test_audit_digests_verified_for_30_days_need_more_than_a_72h_overlap():
    # audit-verify.js replays the whole chain: a digest signed just before the switch is checked
    # for as long as audits are kept. With that as the lifetime, removing the old signer at 72h
    # leaves old events unverifiable against signers.json.
    lifetime = 30 * 86400
    found = gaps(audit(timedelta(hours=72), lifetime))
    assert ("old", "removed-too-early", t(2, hours=72), t(2 + 5 + 1, days=30), False) in found


def test_audit_the_commands_rotation_has_no_gap():
    config = stack("audit-signing", [
        {"id": "old", "state": "active", "createdAt": t(days=-80), "activatedAt": t(days=-80, hours=2)},
    ], algorithm="RS256", publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    assert gaps(gap_free_rotation(config, "audit-signing", t(days=1), retire_after=timedelta(hours=24))) == []


# ---------------------------------------------------------------------------------------------
# 002 signing profile: new key added to the trust anchor and used at once; 2-4 week transition


def test_signing_profile_runbook_signs_with_the_new_key_as_it_is_added():
    # Step 2 adds key-2025-prod to the anchor; step 3 "new signatures are created with the new key"
    # from then on; step 4 revokes the old key ("annual-rotation") after a two-week transition.
    config = stack("signer-default", [
        {"id": "2024", "state": "revoked", "createdAt": t(days=-400), "activatedAt": t(days=-395),
         "retiringAt": t(0), "revokedAt": t(days=14), "revokeReason": "superseded"},
        {"id": "2025", "state": "active", "createdAt": t(0), "activatedAt": t(0)},
    ], algorithm="ES256", publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=86400)
    # The two-week transition is far longer than the overlap (a day and 6 minutes): the old key is
    # fine. The new key is used before any verifier could have the new anchor: 6 minutes.
    assert gaps(config) == [("2025", "published-too-late", t(-1), t(5), False)]


def test_signing_profile_the_commands_rotation_has_no_gap():
    config = stack("signer-default", [
        {"id": "2024", "state": "active", "createdAt": t(days=-400), "activatedAt": t(days=-395)},
    ], algorithm="ES256", publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=86400)
    config = gap_free_rotation(config, "signer-default", t(0), retire_after=timedelta(days=14))
    config = transitions.revoke(config, "signer-default", "2024", reason="superseded", now=t(days=28),
                             record=deployed(config, "signer-default")).stack
    assert gaps(config) == []


# ---------------------------------------------------------------------------------------------
# 003 manifests: anchor published at t=5m, verifiers refetch at their next cache expiry (5-60 min),
# old private key deleted at t=1h


def manifest(**overrides) -> StackConfig:
    return stack("manifest-signing", [
        {"id": "old", "state": "retired", "createdAt": t(days=-90), "activatedAt": t(days=-89),
         "retiringAt": t(5), "retiredAt": t(60)},
        {"id": "new", "state": "active", "createdAt": t(0), "activatedAt": t(5)},
    ], **{"publishMaxAgeSeconds": 3600, "clockSkewSeconds": 60, "tokenLifetimeSeconds": 3600, **overrides})


def test_manifest_runbook_recommended_sequence_has_two_gaps():
    # t=0 key generated; t=5m manifests re-signed AND the new anchor published (the publisher's
    # record); verifiers caching the anchor up to 60 min reject re-signed manifests until t=65m.
    # t=1h the old key leaves the anchor, while manifests it signed up to t=5m (and by lagging
    # signers up to an hour later) are still presented.
    published = {"new": t(5)}
    config = manifest()
    assert gaps(config, published) == [
        ("new", "published-too-late", t(4), t(65), False),
        ("old", "removed-too-early", t(60), t(5 + 60 + 1 + 60), False),
    ]
    # the "temporary spike in INVALID results" the runbook tells on-call to expect


def test_manifest_runbook_personnel_change_one_hour_overlap_is_six_minutes_short():
    # "Personnel change: same day, 1-hour overlap" with 1-hour manifests and a 5-minute anchor cache.
    config = stack("manifest-signing", [
        {"id": "old", "state": "revoked", "createdAt": t(days=-9), "activatedAt": t(days=-9, minutes=10),
         "retiringAt": t(0), "revokedAt": t(60), "revokeReason": "personnel"},
        {"id": "new", "state": "active", "createdAt": t(-6), "activatedAt": t(0)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    assert gaps(config) == [("old", "removed-too-early", t(60), t(66), False)]
    # Through the commands, `revoke --reason personnel` at t=1h is refused and says when it is not
    config = stack("manifest-signing", [
        {"id": "old", "state": "active", "createdAt": t(days=-9), "activatedAt": t(days=-9, minutes=10)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    config = transitions.rotate(config, "manifest-signing", now=t(-6), generation_id="new").stack
    config = transitions.promote(config, "manifest-signing", now=t(0),
                              record=deployed(config, "manifest-signing")).stack
    with pytest.raises(CommandError, match="revoke it from 2026-11-30T10:06:00Z"):
        transitions.revoke(config, "manifest-signing", "old", reason="personnel", now=t(60),
                        record=deployed(config, "manifest-signing"))
    config = transitions.revoke(config, "manifest-signing", "old", reason="personnel", now=t(66),
                             record=deployed(config, "manifest-signing")).stack
    assert gaps(config) == []


def test_manifest_runbook_compromise_gaps_are_intended():
    # "Key compromise suspected: immediate, no overlap - revoke old key first".
    config = stack("manifest-signing", [
        {"id": "old", "state": "active", "createdAt": t(days=-9), "activatedAt": t(days=-9, minutes=10)},
    ], publishMaxAgeSeconds=300, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    result = transitions.revoke(config, "manifest-signing", "old", reason="compromise", now=t(0),
                                new_id="new")
    assert gaps(result.stack) == [
        ("new", "published-too-late", t(-1), t(5), True),
        ("old", "removed-too-early", t(0), t(60), True),
    ]


def test_manifest_the_commands_rotation_with_the_publishers_record_has_no_gap():
    config = stack("manifest-signing", [
        {"id": "old", "state": "active", "createdAt": t(days=-90), "activatedAt": t(days=-89)},
    ], publishMaxAgeSeconds=3600, clockSkewSeconds=60, tokenLifetimeSeconds=3600)
    config = transitions.rotate(config, "manifest-signing", now=t(0), generation_id="new").stack
    record = Publications(first_published={"new": t(5)}, source="outputs")
    # the anchor reached the target at t=5m: promote waits for 61 minutes after that, not after t=0
    with pytest.raises(CommandError, match="Promote allowed from 2026-11-30T10:06:00Z"):
        transitions.promote(config, "manifest-signing", now=t(61), record=record)
    config = transitions.promote(config, "manifest-signing", now=t(66), record=record).stack
    config = transitions.retire(config, "manifest-signing", "old", now=t(66 + 60 + 60 + 1),
                             record=deployed(config, "manifest-signing")).stack
    assert gaps(config, {"new": t(5)}) == []


# ---------------------------------------------------------------------------------------------
# 004 secrets service: the AES key swapped in place in the Secret, then a rollout restart


def test_secrets_service_in_place_swap_strands_ciphertext_both_ways():
    # The Secret holds one key: the new key replaces the old one at 09:00 and the Deployment rolls
    # (bounded by 5 minutes). Old pods cannot decrypt what new pods encrypt until they are gone;
    # new pods cannot decrypt anything encrypted under the old key, for as long as it is read.
    config = stack("secrets-service", [
        {"id": "q3", "state": "retired", "createdAt": t(days=-90), "activatedAt": t(days=-90, minutes=30),
         "retiringAt": t(0), "retiredAt": t(0)},
        {"id": "q4", "state": "active", "createdAt": t(0), "activatedAt": t(0)},
    ], purpose="encrypt", algorithm="A256GCM", publishMaxAgeSeconds=300, clockSkewSeconds=60,
        tokenLifetimeSeconds=3600)
    [keyset] = config.keysets.values()
    found = keyset_gaps(keyset)
    assert [_row(g) for g in found] == [
        ("q4", "published-too-late", t(-1), t(5), False),
        ("q3", "removed-too-early", t(0), t(5 + 1 + 60), False),
    ]
    assert all("pods may meet data they cannot decrypt" in g.describe() for g in found)


def test_secrets_service_two_phase_rotation_through_the_commands_has_no_gap():
    config = stack("secrets-service", [
        {"id": "q3", "state": "active", "createdAt": t(days=-90), "activatedAt": t(days=-90, minutes=30)},
    ], purpose="encrypt", algorithm="A256GCM", publishMaxAgeSeconds=300, clockSkewSeconds=60,
        tokenLifetimeSeconds=3600)
    name = "secrets-service"
    config = transitions.rotate(config, name, now=t(0), generation_id="q4").stack
    config = transitions.promote(config, name, now=t(6), record=deployed(config, name)).stack
    # Secrets encrypted at rest under q3 stay under q3 until re-encrypted: the token-lifetime
    # overlap does not make its removal safe (the 66-minute retirement).
    with pytest.raises(CommandError,
                       match="ciphertext stored under it stays encrypted under it") as refused:
        transitions.retire(config, name, "q3", now=t(6 + 67), record=deployed(config, name))
    assert ("signatures" not in str(refused.value) and "rewrapped secrets-service q3 --by NAME"
            in str(refused.value))
    config = transitions.rewrapped(config, name, "q3", by="oncall@aether", now=t(30),
                                record=deployed(config, name)).stack
    config = transitions.retire(config, name, "q3", now=t(6 + 67), record=deployed(config, name)).stack
    assert gaps(config) == []
