"""Maximum key age: the active generation of every managed key, and native rotation of symmetric KMS keys.

A key resource names the generation it holds in the rotation metadata its component wrote (tags,
labels, annotations, dynamic-resource properties); the generation is then judged as the stack
config describes it (:func:`policy.resources.rotation_metadata`: the model the program read, which
the engine hands the pack). A key the config does not describe (an earlier run's, another
program's, one made by hand) is judged by its metadata alone. Asymmetric and HMAC KMS keys cannot
rotate in place: they are judged by their generation's age only, never for lacking native rotation.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from keyrotation import algorithms
from keyrotation.lifecycle import age_health
from keyrotation.metadata import RotationMetadata, parse_time
from keyrotation.times import SECONDS_PER_DAY
from policy import limits, resources
from policy.limits import days, iso
from policy.resources import UNKNOWN, plain, where

# Cloud KMS rotates in place only keys of this purpose; AWS KMS only symmetric encryption keys.
GCP_ROTATING_PURPOSE = algorithms.GCP_PURPOSES[algorithms.Purpose.ENCRYPT]
AWS_ROTATION = algorithms.AWS_NATIVE_ROTATION
AWS_ROTATING_SPEC, AWS_ROTATING_USAGE = AWS_ROTATION.key_spec, AWS_ROTATION.key_usage
"""RotationPeriodInDays when enableKeyRotation is set without a period (AWS's default)."""


def _rotate_command(keyset: str) -> str:
    return (f"`python -m keyrotation rotate {keyset} --stack {limits.stack_name()}` (a PR that adds a pending"
            " generation), then promote it once its publish lead has passed")


def _active_age(args: ResourceValidationArgs) -> tuple[RotationMetadata, limits.AgeLimit, datetime] | None:
    """(metadata, limit, now) for a key resource whose active generation can be judged."""
    if args.resource_type not in resources.AGED_TYPES:
        return None
    reading = resources.rotation_metadata(args.resource_type, plain(args.props))
    meta = reading.metadata
    if meta is None or meta.state != "active" or meta.activated_at is None:
        return None
    config = args.get_config()
    return meta, limits.age_limit(config, meta.keyset, meta.purpose), limits.evaluation_time(config)


def _activated(meta: RotationMetadata) -> datetime:
    assert meta.activated_at is not None  # _active_age judges only generations that have one
    return meta.activated_at


def _describe(meta: RotationMetadata, args: ResourceValidationArgs, now: datetime) -> str:
    age = (now - _activated(meta)).total_seconds() / SECONDS_PER_DAY
    return (f"keyset '{meta.keyset}', generation '{meta.generation}'"
            f" ({where(args.resource_type, args.name)}):"
            f" active since {iso(_activated(meta))}, {days(age)} old at {iso(now)}")


def validate_max_age(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in resources.AGED_TYPES:
        reading = resources.rotation_metadata(args.resource_type, plain(args.props))
        meta = reading.metadata
        if meta is not None and reading.known and meta.state == "active" and meta.activated_at is None:
            report_violation(
                f"keyset '{meta.keyset}', generation '{meta.generation}'"
                f" ({where(args.resource_type, args.name)}):"
                " active, but its rotation metadata has no activated-at time, so its age cannot be checked."
                f" Set activatedAt for the generation in Pulumi.{limits.stack_name()}.yaml.", None)
    judged = _active_age(args)
    if judged is not None:
        meta, limit, now = judged
        if age_health(_activated(meta), limit.max_age_days, limit.warn_days, now) == "overdue":
            due = _activated(meta) + timedelta(days=limit.max_age_days)
            report_violation(
                f"{_describe(meta, args, now)}; the maximum age is {limit.describe()}, so it was due at"
                f" {iso(due)}. Rotate now: {_rotate_command(meta.keyset)}.", None)
    _native_rotation(args, report_violation)


def validate_age_warning(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    judged = _active_age(args)
    if judged is None:
        return
    meta, limit, now = judged
    if age_health(_activated(meta), limit.max_age_days, limit.warn_days, now) == "warning":
        due = _activated(meta) + timedelta(days=limit.max_age_days)
        left = (due - now).total_seconds() / SECONDS_PER_DAY
        report_violation(
            f"{_describe(meta, args, now)}; it reaches the maximum age of {limit.describe()} at {iso(due)},"
            f" in {days(left)} (warning {days(limit.warn_days)} ahead). Plan the rotation:"
            f" {_rotate_command(meta.keyset)}.",
            None)


# ---------------------------------------------------------------------------------------------
# Native rotation of symmetric KMS keys


def _native_rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    if args.resource_type == resources.AWS_KEY:
        _aws_rotation(args, props, report_violation)
    elif args.resource_type == resources.GCP_CRYPTO_KEY:
        _gcp_rotation(args, props, report_violation)


def _limit_for(args: ResourceValidationArgs, props: dict[str, Any]) -> tuple[str, limits.AgeLimit]:
    meta = resources.rotation_metadata(args.resource_type, props).metadata
    who = f"keyset '{meta.keyset}', generation '{meta.generation}' ({where(args.resource_type, args.name)})" \
        if meta else where(args.resource_type, args.name)
    return who, limits.age_limit(args.get_config(), meta.keyset if meta else None,
                                 meta.purpose if meta else None)


def _aws_rotation(args: ResourceValidationArgs, props: dict[str, Any],
                  report_violation: ReportViolation) -> None:
    spec = props.get("customerMasterKeySpec") or props.get("keySpec") or AWS_ROTATING_SPEC
    usage = props.get("keyUsage") or AWS_ROTATING_USAGE
    if spec is UNKNOWN or usage is UNKNOWN or spec != AWS_ROTATING_SPEC or usage != AWS_ROTATING_USAGE:
        return  # asymmetric and HMAC keys cannot rotate in place: judged by generation age
    if props.get("isEnabled") is False:
        return  # a disabled (retired) generation no longer encrypts
    who, limit = _limit_for(args, props)
    # AWS accepts no period below its minimum; a shorter maxAgeDays is then kept by generation age.
    allowed = AWS_ROTATION.longest_allowed(limit.max_age_days)
    enabled = props.get("enableKeyRotation")
    if enabled is UNKNOWN:
        return
    if not enabled:
        report_violation(
            f"{who}: symmetric ({AWS_ROTATING_SPEC}, {AWS_ROTATING_USAGE}) key without native rotation;"
            f" the maximum age is {limit.describe()}. Set enableKeyRotation=true and"
            f" rotationPeriodInDays <= {allowed:g}.", None)
        return
    period = props.get("rotationPeriodInDays")
    if period is UNKNOWN:
        return
    period = AWS_ROTATION.default_days if period is None else float(period)
    if period > allowed:
        report_violation(
            f"{who}: native rotation every {period:g} days exceeds the maximum age of {limit.describe()}."
            f" Set rotationPeriodInDays <= {allowed:g}.", None)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _gcp_rotation(args: ResourceValidationArgs, props: dict[str, Any],
                  report_violation: ReportViolation) -> None:
    purpose = props.get("purpose") or GCP_ROTATING_PURPOSE  # the provider's default purpose
    if purpose is UNKNOWN or purpose != GCP_ROTATING_PURPOSE:
        return
    who, limit = _limit_for(args, props)
    period_text = props.get("rotationPeriod")
    if period_text is UNKNOWN:
        return
    if not period_text:
        report_violation(
            f"{who}: symmetric ({GCP_ROTATING_PURPOSE}) key without automatic rotation; the maximum age"
            f" is {limit.describe()}. Set rotationPeriod <="
            f" \"{int(limit.max_age_days * SECONDS_PER_DAY)}s\".", None)
        return
    match = _DURATION.match(str(period_text))
    if match is None:
        report_violation(f"{who}: rotationPeriod {period_text!r} is not a duration in seconds such as"
                         " \"7776000s\".",
                         None)
        return
    period_days = float(match.group(1)) / SECONDS_PER_DAY
    if period_days > limit.max_age_days:
        report_violation(
            f"{who}: automatic rotation every {days(period_days)} exceeds the maximum age of"
            f" {limit.describe()}."
            f" Set rotationPeriod <= \"{int(limit.max_age_days * SECONDS_PER_DAY)}s\".", None)


# ---------------------------------------------------------------------------------------------
# Keys this program does not manage


def validate_unmanaged(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    now = limits.evaluation_time(args.get_config())
    props_by_urn = resources.stack_props(args)
    stack = [(r, props_by_urn[r.urn]) for r in args.resources]
    for r, props in stack:
        if r.resource_type not in (resources.AWS_KEY, resources.GCP_CRYPTO_KEY):
            continue
        reading = resources.rotation_metadata(r.resource_type, props)
        if reading.metadata is not None or not reading.known:
            continue
        if r.resource_type == resources.AWS_KEY:
            age = ("its age is unknown: the AWS provider does not expose a key's creation date (see"
                   " `aws kms describe-key`)")
        else:
            times = sorted(
                t for v, v_props in stack
                if v.resource_type == resources.GCP_KEY_VERSION and _version_of(v, v_props, r, props)
                and isinstance(t := v_props.get("generateTime"), str)
            )
            if times:
                newest = parse_time(times[-1])
                age = (f"its newest version was generated {iso(newest)},"
                       f" {days((now - newest).total_seconds() / SECONDS_PER_DAY)} ago")
            else:
                age = "its age is unknown until its versions' generateTime is known"
        report_violation(
            f"{where(r.resource_type, r.name)} is an unmanaged key: it carries no key-rotation metadata, so"
            f" no maximum age is enforced on it; {age}. Manage it as a keyset generation in"
            f" Pulumi.{limits.stack_name()}.yaml, or rotate it by hand.", r.urn)


def _version_of(version: Any, version_props: dict[str, Any], key: Any, key_props: dict[str, Any]) -> bool:
    """Whether a CryptoKeyVersion belongs to a CryptoKey: by its cryptoKey name or its dependency."""
    if any(d.urn == key.urn for d in version.dependencies):
        return True
    key_id = key_props.get("id")
    return isinstance(key_id, str) and version_props.get("cryptoKey") == key_id


# ---------------------------------------------------------------------------------------------

key_max_age = ResourceValidationPolicy(
    name="key-max-age",
    description="The active generation of every managed key is younger than its maximum age, and"
    " symmetric KMS keys rotate natively within it.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=limits.AGE_SCHEMA,
    validate=validate_max_age,
)

key_age_warning = ResourceValidationPolicy(
    name="key-age-warning",
    description="The active generation of a managed key is within warnDays of its maximum age.",
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.LOW,
    config_schema=limits.AGE_SCHEMA,
    validate=validate_age_warning,
)

unmanaged_key = StackValidationPolicy(
    name="unmanaged-key",
    description="KMS keys without rotation metadata are reported, with their age where the provider"
    " exposes it.",
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.MEDIUM,
    config_schema=limits.CLOCK_SCHEMA,
    validate=validate_unmanaged,
)

POLICIES = [key_max_age, key_age_warning, unmanaged_key]
