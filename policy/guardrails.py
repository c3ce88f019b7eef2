"""Resource guardrails: the algorithm profile, deletion windows, protection, and where key material may be.

Most policies judge one resource at a time (`Analyze`, before it is created or updated), so an
unsafe change stops at `pulumi preview`; protection needs the generation's state, which the
KeyGeneration parent holds, and is judged over the stack. Key material may live only in its key
resource's secret outputs and in Kubernetes Secrets; published documents are public by construction
and checked anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
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

from keyrotation import algorithms, documents
from keyrotation.lifecycle import TRANSITIONS, State
from keyrotation.times import SECONDS_PER_DAY
from policy import limits, resources
from policy.resources import UNKNOWN, dig, plain, where

# ---------------------------------------------------------------------------------------------
# The algorithm profile


def _aws_algorithms(spec: str) -> list[algorithms.Algorithm]:
    """Algorithms an AWS KeySpec can hold (RSA specs fill in their size)."""
    return [a for a in algorithms.ALGORITHMS.values() if a.aws_key_spec
            and (spec == a.aws_key_spec or (a.is_rsa and spec.startswith("RSA_")))]


def _gcp_algorithms(name: str) -> list[algorithms.Algorithm]:
    return [a for a in algorithms.ALGORITHMS.values() if name in a.gcp_algorithms.values()]


def _rsa_size(resource_type: str, props: Mapping[str, Any]) -> int | None:
    if resource_type in (resources.SOFTWARE_KEY, resources.PKCS11_KEY):
        size = props.get("key_size")
        return int(size) if isinstance(size, (int, float)) else None
    text = None
    if resource_type == resources.AWS_KEY:
        text = props.get("customerMasterKeySpec") or props.get("keySpec")
    elif resource_type == resources.GCP_CRYPTO_KEY:
        text = dig(props, "versionTemplate", "algorithm")
    elif resource_type == resources.GCP_KEY_VERSION:
        text = props.get("algorithm")
    match = re.search(r"RSA_(?:SIGN_(?:PSS|PKCS1)_|DECRYPT_OAEP_)?(\d{4})", text) if isinstance(text,
                                                                                                str) else None
    return int(match.group(1)) if match else None


def _provider_algorithms(resource_type: str,
                         props: Mapping[str, Any]) -> tuple[str, list[algorithms.Algorithm]] | None:
    """(what the provider says, the algorithms that fits) for a KMS key whose spec is known."""
    if resource_type == resources.AWS_KEY:
        spec = (props.get("customerMasterKeySpec") or props.get("keySpec")
                or algorithms.AWS_NATIVE_ROTATION.key_spec)
        return (f"KeySpec {spec}", _aws_algorithms(spec)) if isinstance(spec, str) else None
    if resource_type == resources.GCP_CRYPTO_KEY:
        name = dig(props, "versionTemplate", "algorithm")
        return (f"algorithm {name}", _gcp_algorithms(name)) if isinstance(name, str) else None
    return None


def validate_profile(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in resources.KEY_TYPES:
        return
    props = plain(args.props)
    meta = resources.rotation_metadata(args.resource_type, props).metadata
    profile = limits.profile(args.get_config(), meta.keyset if meta else None)
    rule = algorithms.PROFILE_RULES[algorithms.Profile(profile)]
    who = where(args.resource_type, args.name)
    if meta is not None:
        who = f"keyset '{meta.keyset}', generation '{meta.generation}' ({who})"
    provider = _provider_algorithms(args.resource_type, props)
    if meta is not None and meta.algorithm:
        spec = algorithms.ALGORITHMS.get(meta.algorithm)
        if spec is None:
            report_violation(f"{who}: algorithm {meta.algorithm!r} is not one of the contract's"
                             f" ({', '.join(algorithms.ALGORITHMS)}).", None)
            return
        if provider is not None and provider[1] and spec not in provider[1]:
            report_violation(f"{who}: its metadata says {meta.algorithm} but the key's {provider[0]} holds"
                             f" {', '.join(a.name for a in provider[1])}: the metadata or the key is wrong.",
                             None)
        candidates = [spec]
    elif provider is not None and provider[1]:
        candidates = provider[1]
    else:
        return
    refused = [a.name for a in candidates if not a.allowed_in(profile)]
    if refused and len(refused) == len(candidates):
        report_violation(
            f"{who}: {' / '.join(refused)} is not allowed in profile '{profile}' ({rule}). Create a keyset"
            " with an allowed algorithm"
            f" ({', '.join(a for a, s in algorithms.ALGORITHMS.items() if s.allowed_in(profile))}),"
            " move consumers to it, then retire this one.", None)
    size = _rsa_size(args.resource_type, props)
    if size is not None and any(a.is_rsa for a in candidates) and size < min(algorithms.RSA_KEY_SIZES):
        report_violation(f"{who}: RSA key of {size} bits; profile '{profile}' requires at least"
                         f" {min(algorithms.RSA_KEY_SIZES)} bits ({rule}).", None)


# ---------------------------------------------------------------------------------------------
# Deletion windows

AWS_DEFAULT_DELETION_DAYS = 30
"""deletionWindowInDays when unset (AWS KMS's default)."""
GCP_DEFAULT_DESTROY_DAYS = 30
"""destroyScheduledDuration when unset (Cloud KMS's default)."""
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


def validate_deletion_window(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    if args.resource_type == resources.AWS_KEY:
        field, default = "deletionWindowInDays", AWS_DEFAULT_DELETION_DAYS
        value = props.get(field)
        window = None if value is UNKNOWN else float(default if value is None else value)
    elif args.resource_type == resources.KMS_RESTORED_KEY and props.get("backend") == "aws-kms":
        # Its second deletion is scheduled with this window (Cloud KMS uses the CryptoKey's).
        value, field = props.get("deletion_window_days"), "deletion_window_days"
        window = None if value is UNKNOWN or value is None else float(value)
    elif args.resource_type == resources.GCP_CRYPTO_KEY:
        field, default = "destroyScheduledDuration", GCP_DEFAULT_DESTROY_DAYS
        value = props.get(field)
        if value is UNKNOWN:
            window = None
        elif value is None:
            window = float(default)
        else:
            match = _SECONDS.match(str(value))
            if match is None:
                report_violation(f"{where(args.resource_type, args.name)}: {field} {value!r} is not a"
                                 " duration in"
                                 " seconds such as \"2592000s\".", None)
                return
            window = float(match.group(1)) / SECONDS_PER_DAY
    else:
        return
    minimum = limits.min_deletion_window_days(args.get_config())
    if window is not None and window < minimum:
        meta = resources.rotation_metadata(args.resource_type, props).metadata
        where_ = f" of keyset '{meta.keyset}'" if meta else ""
        report_violation(
            f"{where(args.resource_type, args.name)}{where_}: {field} is {limits.days(window)}, below the"
            " minimum of"
            f" {limits.days(minimum)} (policy config minDeletionWindowDays): a deletion scheduled by mistake"
            f" could not be cancelled in time. Set deletionWindowDays >= {minimum:g} in"
            f" Pulumi.{limits.stack_name()}.yaml.", None)


# ---------------------------------------------------------------------------------------------
# Protection against deletion

_LOSS = {
    resources.SOFTWARE_KEY: "forget the private key for good (it exists only in this resource's state)",
    resources.PKCS11_KEY: "destroy the key pair in its PKCS#11 token",
    resources.AWS_KEY: "schedule the KMS key for deletion",
    resources.GCP_CRYPTO_KEY: "destroy every version of the key",
    resources.GCP_KEY_VERSION: "destroy the key version",
    resources.KMS_RESTORED_KEY: "schedule the restored KMS key (version) for deletion again",
}
_GCP_KEPT = ("PREVENT", "ABANDON")


def _generation_state(resource: Any, props_by_urn: Mapping[str, Any]) -> str | None:
    """The lifecycle state of the generation a key resource belongs to: the stack config's, else its
    KeyGeneration ancestor's, else the resource's own rotation metadata."""
    reading = resources.rotation_metadata(resource.resource_type, props_by_urn[resource.urn])
    if reading.configured and reading.metadata is not None:
        return reading.metadata.state
    ancestor = resource.parent
    while ancestor is not None:
        if ancestor.resource_type == resources.KEY_GENERATION:
            props = props_by_urn.get(ancestor.urn)
            state = (props if props is not None else plain(ancestor.props)).get("state")
            return state if isinstance(state, str) else None
        ancestor = ancestor.parent
    return reading.metadata.state if reading.metadata else None


def may_be_deleted(state: str | None) -> bool:
    """A generation whose next step may be `destroyed`: destroying its KMS key is deleting the
    resource, which a protected resource would refuse in the same `pulumi up`."""
    return state in set(State) and State.DESTROYED in TRANSITIONS[State(state)]


def validate_protected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    props_by_urn = resources.stack_props(args)
    for r in args.resources:
        if r.resource_type not in resources.KEY_TYPES or r.opts.protect:
            continue
        props = props_by_urn[r.urn]
        if r.resource_type in (resources.GCP_CRYPTO_KEY, resources.GCP_KEY_VERSION) and \
                props.get("deletionPolicy") in _GCP_KEPT:
            continue
        state = _generation_state(r, props_by_urn)
        if may_be_deleted(state):
            continue
        meta = resources.rotation_metadata(r.resource_type, props).metadata
        of = f" of keyset '{meta.keyset}', generation '{meta.generation}'" if meta else ""
        report_violation(
            f"{where(r.resource_type, r.name)}{of} is not"
            f" protected{f' (generation {state})' if state else ''}:"
            f" a `pulumi destroy`, or a change that stops registering it, would {_LOSS[r.resource_type]}."
            " Register it with ResourceOptions(protect=True) (retainOnDelete is not visible to policies);"
            " only a retired generation's key may be unprotected, so that `destroyed` can delete it.", r.urn)


# ---------------------------------------------------------------------------------------------
# Where key material may be

_MATERIAL_NAME = re.compile(r"(?i)(secret|private|key|passw|token|material|keyring|hmac|aes)")
_IDENTIFIER_NAME = re.compile(r"(?i)(_?id|_?ids|arn|_?name|kid|alg|algorithm|generation|url|uri|path|"
                              r"file|version|source|type|format|\.json)$")
_SECRET_LENGTHS = frozenset({16, 24, 32, 48, 64})


def _decode_base64(text: str) -> bytes | None:
    compact = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", compact):
        return None
    try:
        return base64.urlsafe_b64decode(compact.replace("+", "-").replace("/",
                                                                          "_") + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return None


def material_reason(name: str, value: str) -> str | None:
    """Why a named value looks like key material (a PEM private key, a private JWK, a raw secret)."""
    if "PRIVATE KEY" in value:
        return "a PEM private key"
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            found = documents.private_members(json.loads(stripped))
        except ValueError:
            found = []
        if found:
            return f"a JWK with private members ({', '.join(found)})"
    if _MATERIAL_NAME.search(name) and not _IDENTIFIER_NAME.search(name):
        raw = _decode_base64(stripped)
        if raw is not None and len(raw) in _SECRET_LENGTHS:
            return f"a {len(raw)}-byte secret (base64) under a key-material name"
    return None


def _config_map_values(props: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    for key, value in (props.get("data") or {}).items() if isinstance(props.get("data"), Mapping) else ():
        if isinstance(value, str):
            yield f"data.{key}", key, value
    binary = props.get("binaryData")
    for key, value in binary.items() if isinstance(binary, Mapping) else ():
        raw = _decode_base64(value) if isinstance(value, str) else None
        if raw is None:
            continue
        try:
            yield f"binaryData.{key}", key, raw.decode()
        except UnicodeDecodeError:
            # Raw bytes: a secret by length alone under a key-material name.
            if len(raw) in _SECRET_LENGTHS:
                yield f"binaryData.{key}", key, base64.b64encode(raw).decode()


def validate_config_map(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in resources.CONFIG_MAP_TYPES:
        return
    props = plain(args.props)
    namespace, name = dig(props, "metadata", "namespace"), dig(props, "metadata", "name")
    for path, key, value in _config_map_values(props):
        reason = material_reason(key, value)
        if reason:
            report_violation(
                f"{where(args.resource_type, args.name)} ({namespace}/{name}) {path} holds {reason}:"
                " ConfigMaps are"
                " readable by anyone who can read the namespace's configuration. Deliver key material"
                " through a"
                " Secret consumer (`consumers: - secret: ...` with `material`/`keyring`).", None)


def _env_lists(value: Any, container: str = "") -> Iterator[tuple[str, list]]:
    if isinstance(value, Mapping):
        name: str = value["name"] if isinstance(value.get("name"), str) else container
        if isinstance(value.get("env"), list):
            yield name, value["env"]
        for key, item in value.items():
            if key != "env":
                yield from _env_lists(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _env_lists(item, container)


def validate_env(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in resources.WORKLOAD_TYPES:
        return
    props = plain(args.props)
    spec = props.get("spec")
    for container, env in _env_lists(spec):
        for index, item in enumerate(env):
            if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
                continue
            var: str = item["name"] if isinstance(item.get("name"), str) else f"env[{index}]"
            reason = material_reason(var, item["value"])
            if reason:
                report_violation(
                    f"{where(args.resource_type, args.name)}: container '{container}' env {var} holds"
                    f" {reason} as a"
                    " plain value, visible to anyone who can read the workload. Reference it from a Secret"
                    " instead (a consumer's `material:` entry becomes a secretKeyRef).", None)


def validate_public_documents(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    record = resources.document_record(args.resource_type, plain(args.props), args.urn, args.name)
    if record is None or record.document is UNKNOWN:
        return
    if record.document is None:
        report_violation(f"keyset '{record.keyset}': {record.where} is not a JSON document.", None)
        return
    found = documents.private_members(record.document)
    if found:
        report_violation(
            f"keyset '{record.keyset}': {record.where} contains private key material at {', '.join(found)}."
            " Only public keys may be published: never put private JWK members or PEM private keys in"
            " published documents.", None)


# ---------------------------------------------------------------------------------------------

algorithm_profile = ResourceValidationPolicy(
    name="algorithm-allowed-by-profile",
    description="Every key's algorithm is allowed by its keyset's profile (fips: no EdDSA, no ES256K,"
    " RSA >= 2048, ECDSA P-256/P-384; gost, sm2, pqc: only their algorithms).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=limits.PROFILE_SCHEMA,
    validate=validate_profile,
)

deletion_window = ResourceValidationPolicy(
    name="deletion-window-minimum",
    description="KMS deletion windows and destroy-scheduled durations are at least the configured minimum.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=limits.DELETION_SCHEMA,
    validate=validate_deletion_window,
)

key_protected = StackValidationPolicy(
    name="key-resources-protected",
    description="Key resources are protected against deletion (a retired generation's may be deleted).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=validate_protected,
)

public_documents = ResourceValidationPolicy(
    name="published-documents-public-only",
    description="Published documents contain no private JWK members or private keys.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=validate_public_documents,
)

config_map_material = ResourceValidationPolicy(
    name="no-key-material-in-configmaps",
    description="ConfigMaps hold no key material.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=validate_config_map,
)

env_material = ResourceValidationPolicy(
    name="no-key-material-in-env",
    description="Workloads hold no key material in plain environment values.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=validate_env,
)

POLICIES = [algorithm_profile, deletion_window, key_protected, public_documents, config_map_material,
            env_material]
