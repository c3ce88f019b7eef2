"""Key-age alerts as a PrometheusRule (monitoring.coreos.com/v1): one rule group per keyset.

The thresholds are times baked into each expression, computed at ``pulumi up`` from the keyset's
generations and :class:`keyrotation.lifecycle.Timings`, and compared with Prometheus' own clock
(``time()``). Why not a metric of the cluster: the rotation metadata is published as annotations,
which kube-state-metrics exposes (``kube_secret_annotations``, and only with an allow-list flag)
as label *strings*; PromQL cannot compute with a label value, so no key age can be derived from
them. A baked time needs nothing but Prometheus, keeps firing when nobody runs the program (which
is exactly when a rotation is missed) and moves with every rotation that is applied.

Alerts per keyset:

- ``KeyAgeApproachingMax`` (warning): the active generation is ``maxAgeDays - warnDays`` old;
- ``KeyAgeBeyondMax`` (critical): the active generation is ``maxAgeDays`` old;
- ``NoKeyRotation`` (warning; the gateway runbook's alert): no generation was added for
  ``maxAgeDays - warnDays``: no rotation was started in the period that leaves time to deliver a
  successor for the publish lead and promote it before the active key is too old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pulumi

from components.kubernetes import MANAGED_BY
from keyrotation.config import KeySetConfig, StackConfig
from keyrotation.times import SECONDS_PER_DAY, format_time
from keyrotation.view import view

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
DAY_SECONDS = SECONDS_PER_DAY


def _age_days_at_least(since: datetime, days: float) -> str:
    # vector(): alerting rules need an instant vector, and a scalar comparison needs `bool`.
    return f"(vector(time()) - {int(since.timestamp())}) / {DAY_SECONDS} >= {days:g}"


def keyset_rules(environment: str, keyset: KeySetConfig) -> list[dict[str, Any]]:
    timings = keyset.timings
    keys = view(keyset)
    active = keys.active
    assert active.activated_at is not None and keys.due_at is not None and keys.warn_at is not None
    warn_days = (keys.warn_at - active.activated_at).total_seconds() / DAY_SECONDS
    max_days = (keys.due_at - active.activated_at).total_seconds() / DAY_SECONDS
    newest = max(keyset.generations, key=lambda g: g.created_at)
    labels = {"keyset": keyset.name, "environment": environment, "generation": active.id}
    lead = int(timings.publish_lead.total_seconds())
    return [
        {
            "alert": "KeyAgeApproachingMax",
            "expr": _age_days_at_least(active.activated_at, warn_days),
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": f"Keyset {keyset.name}: the active key is {{{{ $value | printf \"%.1f\" }}}} days"
                           " old",
                "description": (
                    f"Generation {active.id} of keyset {keyset.name} ({environment}) was activated at"
                    f" {format_time(active.activated_at)} and reaches maxAgeDays ({timings.max_age_days})"
                    f" at {format_time(keys.due_at)}. Promote a pending generation that has been"
                    f" delivered for at least the publish lead ({lead} s)."
                ),
            },
        },
        {
            "alert": "KeyAgeBeyondMax",
            "expr": _age_days_at_least(active.activated_at, max_days),
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Keyset {keyset.name}: the active key is older than {timings.max_age_days} days",
                "description": (
                    f"Generation {active.id} of keyset {keyset.name} ({environment}) has been active since"
                    f" {format_time(active.activated_at)}, beyond maxAgeDays ({timings.max_age_days})."
                ),
            },
        },
        {
            "alert": "NoKeyRotation",
            "expr": _age_days_at_least(newest.created_at, warn_days),
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": f"Keyset {keyset.name}: no rotation started for {{{{ $value | printf \"%.1f\""
                           " }} days",
                "description": (
                    f"The newest generation of keyset {keyset.name} ({environment}), {newest.id}, was added"
                    f" at {format_time(newest.created_at)}. Add a pending generation now: it must be"
                    f" delivered for the publish lead ({lead} s) before it may replace {active.id},"
                    f" which reaches maxAgeDays at {format_time(keys.due_at)}."
                ),
            },
        },
    ]


def rule_groups(stack: StackConfig) -> list[dict[str, Any]]:
    """The PrometheusRule's ``spec.groups``: one group per keyset, in config order."""
    return [
        {"name": f"key-rotation.{name}", "rules": keyset_rules(stack.environment, keyset)}
        for name, keyset in stack.keysets.items()
    ]


@dataclass
class KeyRotationAlertsArgs:
    stack: StackConfig


class KeyRotationAlerts(pulumi.ComponentResource):
    """The stack's PrometheusRule, when ``kubernetes.alerts`` is set."""

    def __init__(self, name: str, args: KeyRotationAlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("key-rotation:kubernetes:KeyRotationAlerts", name, None, opts)
        from pulumi_kubernetes.apiextensions import CustomResource

        kubernetes = args.stack.kubernetes
        assert kubernetes is not None and kubernetes.alerts is not None
        self.rule = CustomResource(
            f"{name}-rule",
            api_version=API_VERSION,
            kind=KIND,
            metadata={
                "name": "key-rotation",
                "namespace": kubernetes.alerts.namespace or kubernetes.namespace,
                "labels": {**MANAGED_BY, **kubernetes.alerts.labels},
            },
            spec={"groups": rule_groups(args.stack)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def stack_alerts(
    stack: StackConfig, provider: pulumi.ProviderResource | None
) -> KeyRotationAlerts | None:
    """The stack's alerts when its ``kubernetes.alerts`` asks for them."""
    if stack.kubernetes is None or stack.kubernetes.alerts is None:
        return None
    return KeyRotationAlerts("alerts", KeyRotationAlertsArgs(stack=stack),
                             pulumi.ResourceOptions(providers=[provider] if provider else None))
