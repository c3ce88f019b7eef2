"""The `metrics` publish format (OpenMetrics) and the PrometheusRule alerts that read it.

The document is read back with prometheus_client's OpenMetrics parser, and the alert expressions
of components/alerts.py are evaluated by Prometheus' own PromQL engine (tests/promql_engine.py,
tools/promql) over the published series, at instants either side of each threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components import alerts
from keyrotation import documents, lifecycle, metrics
from keyrotation.commands import transitions
from keyrotation.commands.records import kid_of
from keyrotation.config import StackConfig, parse
from keyrotation.documents import KeyRecord
from tests.deployed import deployed
from tests.promql_engine import classic_text_families, evaluate, series_of

SECOND = timedelta(seconds=1)


def stack() -> StackConfig:
    return parse({"environment": "t", "profile": "default", "keysets": {"gw": {
        "purpose": "sign", "algorithm": "EdDSA", "kid": "gw-{generation}", "maxAgeDays": 30, "warnDays": 5,
        "generations": [
            {"id": "g1", "state": "retired", "createdAt": "2026-08-01T00:00:00Z",
             "activatedAt": "2026-08-02T00:00:00Z", "retiringAt": "2026-09-01T00:00:00Z",
             "retiredAt": "2026-09-02T00:00:00Z"},
            {"id": "g2", "state": "revoked", "createdAt": "2026-08-20T00:00:00Z",
             "revokedAt": "2026-08-21T00:00:00Z", "revokeReason": "personnel"},
            {"id": "g3", "state": "active", "createdAt": "2026-08-30T00:00:00Z",
             "activatedAt": "2026-09-01T00:00:00Z"},
        ]}}}, stack_file="Pulumi.t.yaml")


def document(s: StackConfig, name: str = "gw") -> str:
    ks = s.keysets[name]
    records = [KeyRecord.of(g, kid=kid_of(s, ks, g), algorithm=ks.algorithm, public_pem=None,
                            timings=ks.timings) for g in ks.generations]
    return documents.render(documents.build("metrics", records, ks))


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_the_document_is_openmetrics_with_seed_002s_names_and_the_generations_times():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    text = document(stack())
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["signer_keys_active_total"].type == "gauge"
    assert families["signer_keys_revoked"].type == "counter"
    assert families["signer_rotation_events"].type == "counter"

    def samples(name: str) -> dict:
        return {(s.labels.get("generation"), s.labels.get("state")): s.value
                for f in families.values() for s in f.samples if s.name == name}

    base = {"keyset": "gw", "profile": "default"}
    [active] = families["signer_keys_active_total"].samples
    assert (active.labels, active.value) == (base, 1)
    assert samples("signer_keys_revoked_total") == {(None, None): 1}
    assert samples("signer_rotation_events_total") == {(None, None): 2}
    assert samples(metrics.CREATED) == {("g1", "retired"): t("2026-08-01T00:00:00Z").timestamp(),
                                        ("g2", "revoked"): t("2026-08-20T00:00:00Z").timestamp(),
                                        ("g3", "active"): t("2026-08-30T00:00:00Z").timestamp()}
    assert samples(metrics.ACTIVATED) == {("g1", "retired"): t("2026-08-02T00:00:00Z").timestamp(),
                                          ("g3", "active"): t("2026-09-01T00:00:00Z").timestamp()}
    # Only the active generation is due; the lifecycle's own due and warn times.
    ks = stack().keysets["gw"]
    age = lifecycle.key_age(ks.generations, ks.timings, now=t("2026-09-05T00:00:00Z"))
    assert age.due_at is not None and age.warn_at is not None
    assert samples(metrics.DUE) == {("g3", "active"): age.due_at.timestamp()}
    assert samples(metrics.WARN) == {("g3", "active"): age.warn_at.timestamp()}
    assert age.due_at == t("2026-10-01T00:00:00Z")
    [due] = [s for s in families[metrics.DUE].samples]
    assert due.labels == {**base, "generation": "g3", "kid": "gw-g3", "state": "active"}
    # No time of publication: the same stack file gives the same bytes, whenever it is published.
    assert document(stack()) == text
    assert "signer_key_age_days" not in text


def test_a_textfile_collector_reads_the_same_bytes():
    """node-exporter's textfile collector parses the classic text format (prometheus/common's parser):
    every series keeps its name; the two counters arrive untyped, which PromQL does not mind."""
    families = classic_text_families(document(stack()))
    assert families == {
        "signer_keys_active_total": {"type": "GAUGE", "samples": 1},
        "signer_keys_revoked_total": {"type": "UNTYPED", "samples": 1},
        "signer_rotation_events_total": {"type": "UNTYPED", "samples": 1},
        metrics.CREATED: {"type": "GAUGE", "samples": 3},
        metrics.ACTIVATED: {"type": "GAUGE", "samples": 2},
        metrics.WARN: {"type": "GAUGE", "samples": 1},
        metrics.DUE: {"type": "GAUGE", "samples": 1},
    }


def test_the_alerts_fire_from_the_published_series_at_the_thresholds():
    s = stack()
    ks = s.keysets["gw"]
    series = series_of(document(s))
    exprs = alerts.expressions("gw")
    due, warn = t("2026-10-01T00:00:00Z"), t("2026-09-26T00:00:00Z")
    no_rotation = t("2026-08-30T00:00:00Z") + (warn - t("2026-09-01T00:00:00Z"))  # newest createdAt + 25 days
    instants = [warn - SECOND, warn, due - SECOND, due, no_rotation - SECOND, no_rotation]
    result = evaluate(series, list(exprs.values()), instants)

    def fired(alert: str, at: datetime) -> list:
        return result[(at, exprs[alert])]

    assert fired("KeyAgeApproachingMax", warn - SECOND) == []
    [(labels, value)] = fired("KeyAgeApproachingMax", warn)
    assert (labels["keyset"], labels["generation"], value) == ("gw", "g3", pytest.approx(25))
    assert fired("KeyAgeBeyondMax", due - SECOND) == []
    [(labels, value)] = fired("KeyAgeBeyondMax", due)
    assert (labels["generation"], value) == ("g3", pytest.approx(ks.timings.max_age_days))
    assert fired("NoKeyRotation", no_rotation - SECOND) == []
    [(labels, value)] = fired("NoKeyRotation", no_rotation)
    assert (labels, value) == ({"keyset": "gw"}, pytest.approx(25))
    # Seed 002's gauge, as the recording rule computes it.
    [(labels, value)] = result[(due, exprs[metrics.AGE_DAYS])]
    assert value == pytest.approx(30) and labels["generation"] == "g3"
    assert all(result[(at, exprs["KeyRotationMetricsAbsent"])] == [] for at in instants)


def test_after_a_rotation_the_same_rule_reads_the_new_series():
    """The rule holds no time: the rotation changes the published document, and the alerts follow."""
    s = stack()
    s = transitions.rotate(s, "gw", now=t("2026-09-20T00:00:00Z"), generation_id="g4").stack
    s = transitions.promote(s, "gw", now=t("2026-09-21T00:00:00Z"), record=deployed(s, "gw")).stack
    exprs = alerts.expressions("gw")
    old_due = t("2026-10-01T00:00:00Z")
    new_due = t("2026-10-21T00:00:00Z")
    result = evaluate(series_of(document(s)), [exprs["KeyAgeBeyondMax"]],
                      [old_due, new_due - SECOND, new_due])
    assert result[(old_due, exprs["KeyAgeBeyondMax"])] == []
    assert result[(new_due - SECOND, exprs["KeyAgeBeyondMax"])] == []
    [(labels, _)] = result[(new_due, exprs["KeyAgeBeyondMax"])]
    assert labels["generation"] == "g4"


def test_without_the_series_only_the_absent_alert_fires():
    exprs = alerts.expressions("gw")
    other = series_of(document(stack()))
    other = [({**labels, "keyset": "elsewhere"}, v) for labels, v in other]
    at = t("2027-06-01T00:00:00Z")
    result = evaluate(other, list(exprs.values()), [at])
    assert result[(at, exprs["KeyRotationMetricsAbsent"])] == [({"keyset": "gw"}, 1.0)]
    assert all(result[(at, e)] == [] for name, e in exprs.items() if name != "KeyRotationMetricsAbsent")


def test_a_symmetric_keyset_may_publish_metrics_and_the_text_never_carries_material():
    s = parse({"environment": "t", "keysets": {"vault": {
        "purpose": "encrypt", "algorithm": "A256GCM", "publish": [{"format": "metrics", "target": "file://published/m.prom"}],
        "generations": [{"id": "a", "state": "active", "createdAt": "2026-08-01T00:00:00Z",
                         "activatedAt": "2026-08-02T00:00:00Z"}]}}}, stack_file="Pulumi.t.yaml")
    text = document(s, "vault")
    assert documents.private_members(text) == []
    assert documents.content_type("metrics").startswith("application/openmetrics-text")
    assert documents.kids_in("metrics", text) == []


def test_the_dev_stack_publishes_the_gateways_metrics_and_the_alerts_read_them(project, monkeypatch):
    """What the dev stack writes to published/metrics/ parses as OpenMetrics, does not change a day
    later, and is what the alerts are evaluated against."""
    from tests.engine import Engine

    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev")
    engine.up()
    path = project / "published/metrics/atlas-gateway.prom"
    text = path.read_text()
    stat = path.stat()
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-24T12:00:00Z")
    assert {op for op, _ in engine.up().operations} == {"same"}
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.read_text() == text
    series = series_of(text)
    assert {s["generation"] for s, _ in series if s["__name__"] == metrics.ACTIVATED} == {
        "2026-11-09", "2026-11-16", "2026-11-23"}
    exprs = alerts.expressions("atlas-gateway")
    # 2026-11-23T09:10Z active, maxAgeDays 7, warnDays 2
    warn, due = t("2026-11-28T09:10:00Z"), t("2026-11-30T09:10:00Z")
    result = evaluate(series, [exprs["KeyAgeApproachingMax"], exprs["KeyAgeBeyondMax"]],
                      [warn - SECOND, warn, due - SECOND, due])
    assert [bool(result[(at, exprs["KeyAgeApproachingMax"])])
            for at in (warn - SECOND, warn)] == [False, True]
    assert [bool(result[(at, exprs["KeyAgeBeyondMax"])]) for at in (due - SECOND, due)] == [False, True]
