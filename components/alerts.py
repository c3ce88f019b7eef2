"""Key-age alerts as a PrometheusRule (monitoring.coreos.com/v1): one rule group per keyset.

The alerts compute ages from the series each keyset publishes in its ``metrics`` document
(keyrotation/metrics.py: per generation, its creation and activation times and, for the active
one, its warn and due times), compared with Prometheus' own clock (``time()``). The rule itself
holds no time: a rotation changes the published series, not the rule, and the published
document changes only when the stack file does. Why not a metric of the cluster: the rotation
metadata is published as annotations, which kube-state-metrics exposes only as label *strings*,
which PromQL cannot compute with. The keyset's metrics document must be scraped (a static web
server or a node-exporter textfile collector): ``KeyRotationMetricsAbsent`` fires when it is not,
so a missing scrape is never a silent "no alert".

Per keyset:

- ``signer_key_age_days`` (recording rule, seed 002's gauge): the active generation's age in days;
- ``KeyAgeApproachingMax`` (warning): the active generation is ``maxAgeDays - warnDays`` old;
- ``KeyAgeBeyondMax`` (critical): the active generation is ``maxAgeDays`` old;
- ``NoKeyRotation`` (warning; the gateway runbook's alert): no generation was added for
  ``maxAgeDays - warnDays``: no rotation was started in the period that leaves time to deliver a
  successor for the publish lead and promote it before the active key is too old;
- ``KeyRotationMetricsAbsent`` (warning): Prometheus has none of the keyset's series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.kubernetes import MANAGED_BY
from keyrotation import metrics
from keyrotation.config import KeySetConfig, StackConfig
from keyrotation.times import SECONDS_PER_DAY

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
DAY_SECONDS = SECONDS_PER_DAY


def _selector(keyset: str, **more: str) -> str:
    labels = {"keyset": keyset, **more}
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def expressions(keyset: str) -> dict[str, str]:
    """Per rule (the recording rule under its metric name), its PromQL over the published series."""
    ks, active = _selector(keyset), _selector(keyset, state="active")
    age_days = f"(time() - {metrics.ACTIVATED}{active}) / {DAY_SECONDS}"
    return {
        metrics.AGE_DAYS: age_days,
        # `and on(...)`: the age (the alert's value) where the published threshold has passed.
        "KeyAgeApproachingMax": f"{age_days} and on(keyset, generation) ({metrics.WARN}{active} <= time())",
        "KeyAgeBeyondMax": f"{age_days} and on(keyset, generation) ({metrics.DUE}{active} <= time())",
        # Days since the newest generation was added, against the active one's warn offset.
        "NoKeyRotation": (
            f"(time() - max by (keyset) ({metrics.CREATED}{ks})) / {DAY_SECONDS}"
            f" >= on(keyset) max by (keyset)"
            f" ({metrics.WARN}{active} - {metrics.ACTIVATED}{active}) / {DAY_SECONDS}"
        ),
        "KeyRotationMetricsAbsent": f"absent({metrics.CREATED}{ks})",
    }


def keyset_rules(environment: str, keyset: KeySetConfig) -> list[dict[str, Any]]:
    timings = keyset.timings
    exprs = expressions(keyset.name)
    labels = {"keyset": keyset.name, "environment": environment}
    lead = int(timings.publish_lead.total_seconds())
    active = "{{ $labels.generation }}"
    return [
        {"record": metrics.AGE_DAYS, "expr": exprs[metrics.AGE_DAYS], "labels": {"environment": environment}},
        {
            "alert": "KeyAgeApproachingMax",
            "expr": exprs["KeyAgeApproachingMax"],
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": (
                    f"Keyset {keyset.name}: the active key is {{{{ $value | printf \"%.1f\" }}}} days old"
                ),
                "description": (
                    f"Generation {active} of keyset {keyset.name} ({environment}) approaches maxAgeDays"
                    f" ({timings.max_age_days}). Promote a pending generation that has been"
                    f" delivered for at least the publish lead ({lead} s)."
                ),
            },
        },
        {
            "alert": "KeyAgeBeyondMax",
            "expr": exprs["KeyAgeBeyondMax"],
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Keyset {keyset.name}: the active key is older than {timings.max_age_days} days",
                "description": (
                    f"Generation {active} of keyset {keyset.name} ({environment}) has been active for"
                    f" {{{{ $value | printf \"%.1f\" }}}} days, beyond maxAgeDays ({timings.max_age_days})."
                ),
            },
        },
        {
            "alert": "NoKeyRotation",
            "expr": exprs["NoKeyRotation"],
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": (
                    f"Keyset {keyset.name}: no rotation started for {{{{ $value | printf \"%.1f\" }}}} days"
                ),
                "description": (
                    f"No generation was added to keyset {keyset.name} ({environment}) for"
                    f" maxAgeDays - warnDays. Add a pending generation now: it must be delivered for"
                    f" the publish lead ({lead} s) before it may replace the active one."
                ),
            },
        },
        {
            "alert": "KeyRotationMetricsAbsent",
            "expr": exprs["KeyRotationMetricsAbsent"],
            "for": "15m",
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": f"Keyset {keyset.name}: no key-age series",
                "description": (
                    f"Prometheus has none of keyset {keyset.name}'s key-age series ({environment}): publish"
                    f" its `metrics` document and scrape it, or the key-age alerts cannot fire."
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
