"""Validation beyond types: the rules of the contract and of each cloud, in one pass per keyset.
"""

from __future__ import annotations

import contextlib
import re
import string
from collections.abc import Callable
from datetime import datetime

from .. import algorithms, envelope, metadata, revocation, targets, times
from .. import identifiers as names
from ..algorithms import AWS_NATIVE_ROTATION, BACKENDS, Backend, Purpose
from ..documents import Format
from ..identifiers import THUMBPRINT_KID, kid_needs_key
from ..lifecycle import (
    FORBIDDEN_TIMES,
    REQUIRED_TIMES,
    REVOKE_REASONS,
    STATE_TIME,
    TIME_ORDER,
    State,
    Trigger,
    allowed,
    first_pass,
)
from ..lifecycle import path as history_path
from ..times import format_time
from ..view import keyset_problems
from .model import (
    KID_PLACEHOLDERS,
    DeploymentConsumer,
    Generation,
    KeySetConfig,
    Publication,
    SecretConsumer,
    StackConfig,
    _snake,
)
from .problems import Problem


def validate(stack: StackConfig, *, now: datetime | None = None) -> list[Problem]:
    problems: list[Problem] = []
    why = names.id_problem(stack.environment, "environment")
    if why:
        problems.append(Problem(why, field="environment"))
    why = targets.root_problem(stack.publish_root)
    if why:
        problems.append(Problem(f"publishRoot {why}", field="publishRoot"))
    for name, keyset in stack.keysets.items():
        problems += _validate_keyset(stack, name, keyset)
    problems += _validate_delivery(stack) + _validate_trust_anchors(stack) + _validate_unique(stack)
    if now is not None:
        problems += _validate_not_future(stack, now)
    return problems


def _validate_keyset(stack: StackConfig, name: str, ks: KeySetConfig) -> list[Problem]:
    out: list[Problem] = []

    def problem(message: str, field: str | None = None, generation: str | None = None) -> None:
        out.append(Problem(message, name, generation, field))

    why = names.id_problem(name, "keyset name")
    if why:
        problem(why)

    spec = algorithms.ALGORITHMS.get(ks.algorithm)
    if spec is None:
        problem(
            f"unknown algorithm {ks.algorithm!r}; use one of {', '.join(algorithms.ALGORITHMS)}",
            "algorithm",
        )
        return out + _validate_generations(stack, name, ks, None)
    if spec.purpose != ks.purpose:
        fitting = [a.name for a in algorithms.ALGORITHMS.values() if a.purpose == ks.purpose]
        problem(
            f"{ks.algorithm} is a '{spec.purpose}' algorithm but the keyset's purpose is"
            f" '{ks.purpose}'; use one of {', '.join(fitting)}",
            "algorithm",
        )
    if ks.key_size is not None and not spec.is_rsa:
        problem(f"keySize applies to RSA algorithms (RS*, PS*) only, not {ks.algorithm}", "keySize")
    profile = ks.profile or stack.profile
    if not spec.allowed_in(profile):
        problem(
            f"{ks.algorithm} is not allowed by profile '{profile}'"
            f" ({algorithms.PROFILE_RULES[profile]}); use {', '.join(algorithms.allowed_in(profile))}",
            "algorithm",
        )
    out += _validate_backend(stack, name, ks, spec)
    out += _validate_kid(name, ks, stack.environment)
    out += _validate_publish(stack, name, ks, spec)
    out += _validate_consumers(stack, name, ks)
    if ks.purpose == "sign":
        for field in ("dataAtRest", "dataRetentionSeconds"):
            if getattr(ks, _snake(field)) is not None:
                problem(f"a sign keyset keeps no data at rest (signatures expire with tokenLifetimeSeconds);"
                        f" {field} is for encrypt and mac keysets", field)
    if ks.staging is not None and ks.staging.stack == stack.environment:
        problem(f"staging.stack '{ks.staging.stack}' is this stack's own environment; name the stack"
                " whose steps this keyset waits for (e.g. staging)", "staging")
    t = ks.timings
    if t.warn_days >= t.max_age_days:
        problem(f"warnDays ({t.warn_days}) must be less than maxAgeDays ({t.max_age_days})", "warnDays")
    return out + _validate_generations(stack, name, ks, spec)


def _validate_backend(stack: StackConfig, name: str, ks: KeySetConfig,
                      spec: algorithms.Algorithm) -> list[Problem]:
    out: list[Problem] = []
    if ks.backend in (Backend.SOFTWARE, Backend.PKCS11, Backend.AWS_KMS) and not spec.cryptography_generates:
        out.append(Problem(
            f"{ks.algorithm} keys are held in an HSM and declared by their public key: use backend"
            " external with each generation's publicKeyPem", name, None, "backend",
        ))
    elif ks.backend == "pkcs11" and spec.pkcs11_key_type is None:
        fitting = [a.name for a in algorithms.ALGORITHMS.values() if a.pkcs11_key_type]
        out.append(Problem(
            f"backend pkcs11 generates {', '.join(fitting)} keys in a token, not {ks.algorithm};"
            " declare a key made elsewhere with backend external", name, None, "backend",
        ))
    elif ks.backend == "aws-kms" and spec.aws_key_spec is None:
        out.append(Problem(f"aws-kms has no key spec for {ks.algorithm}", name, None, "algorithm"))
    if ks.backend == "pkcs11" and ks.pkcs11 is None and stack.pkcs11 is None:
        out.append(Problem(
            "is required for backend pkcs11 (module and token, here or for the whole stack)",
            name, None, "pkcs11",
        ))
    if ks.backend != "pkcs11" and ks.pkcs11 is not None:
        out.append(Problem(f"only backend pkcs11 takes pkcs11 (this keyset is {ks.backend})", name, None,
                           "pkcs11"))
    if ks.backend == "gcp-kms":
        if spec.gcp_algorithm(ks.rsa_key_size) is None:
            size = f" with keySize {ks.rsa_key_size}" if spec.is_rsa else ""
            out.append(Problem(f"gcp-kms cannot hold {ks.algorithm}{size}: {spec.gcp_rule}", name, None,
                               "algorithm"))
        if spec.gcp_hsm_only and ks.gcp.protection_level != "HSM":
            out.append(Problem(
                f"gcp-kms cannot hold {ks.algorithm} at protectionLevel {ks.gcp.protection_level}:"
                f" {spec.gcp_rule}; set gcp.protectionLevel: HSM",
                name, None, "gcp.protectionLevel",
            ))
        for key in ("location", "keyRing"):
            if getattr(ks.gcp, _snake(key)) is None:
                out.append(Problem("is required for backend gcp-kms", name, None, f"gcp.{key}"))
        if ks.gcp.project is None and not stack.other.get("gcp:project"):
            out.append(Problem(
                "is required for backend gcp-kms (or set the stack's gcp:project)", name, None, "gcp.project"
            ))
        if ks.gcp.key_ring is not None and not _GCP_RESOURCE_ID.fullmatch(ks.gcp.key_ring):
            out.append(Problem(
                f"{ks.gcp.key_ring!r} is not a Cloud KMS KeyRing id: 1 to 63 letters, digits, '_' and '-'",
                name, None, "gcp.keyRing",
            ))
        # The keyset names the CryptoKey, and keyset, generation and environment become the
        # CryptoKey's labels (keyrotation.metadata), which GCP restricts further than ids.
        label = f"backend gcp-kms writes it into the CryptoKey's labels ({metadata.GCP_PREFIX}*)"
        for value, generation, field in (
            (name, None, None),
            (stack.environment, None, "environment"),
            *((g.id, g.id, "id") for g in ks.generations),
        ):
            why = metadata.gcp_label_problem(value)
            if why:
                out.append(Problem(f"{why}; {label}", name, generation, field))
    if ks.backend == "aws-kms":
        if ks.aws.region is None and not stack.other.get("aws:region"):
            out.append(Problem(
                "is required for backend aws-kms (or set the stack's aws:region)", name, None, "aws.region"
            ))
        low, high = AWS_NATIVE_ROTATION.min_days, AWS_NATIVE_ROTATION.max_days
        if AWS_NATIVE_ROTATION.rotates(spec.aws_key_spec) and ks.timings.max_age_days < low:
            out.append(Problem(
                f"{ks.timings.max_age_days} days is shorter than AWS KMS can rotate a symmetric key"
                f" (RotationPeriodInDays {low}..{high}), and AWS's native rotation must not outlast"
                f" maxAgeDays; use maxAgeDays >= {low} for backend aws-kms",
                name, None, "maxAgeDays",
            ))
        prefix = ks.aws.alias_prefix
        aliases: list[tuple[str, str | None, str]] = [(f"{prefix}{name}", None, "aws.aliasPrefix")]
        aliases += [(f"{prefix}{name}-{g.id}", g.id, "id") for g in ks.generations]
        for alias, generation, field in aliases:
            if not _AWS_ALIAS.fullmatch(alias) or alias.startswith("alias/aws/"):
                out.append(Problem(
                    f"alias {alias!r} is not an AWS KMS alias name: 'alias/' then letters, digits, '/',"
                    " '_' and '-' (at most 256 characters, not under alias/aws/)",
                    name, generation, field,
                ))
    if ks.backend == "external" and spec.is_symmetric:
        out.append(Problem(
            f"backend external holds only public keys; {ks.algorithm} is symmetric", name, None, "backend"
        ))
    return out


_GCP_RESOURCE_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_AWS_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")


SAMPLE_THUMBPRINT = "A" * 43
"""Stands for a generated key's thumbprint (43 base64url characters, RFC 7638 SHA-256) when a kid
template is checked before the key exists: the length and characters of the kid are the same."""


def _validate_kid(name: str, ks: KeySetConfig, environment: str = "") -> list[Problem]:
    if ks.kid == THUMBPRINT_KID:
        return []
    try:
        parsed = list(string.Formatter().parse(ks.kid))
    except ValueError as error:
        return [Problem(f"invalid kid template {times.shown(ks.kid)}: {error}", name, None, "kid")]
    fields = {f for _, f, _, _ in parsed if f is not None}
    unknown = fields - set(KID_PLACEHOLDERS)
    if unknown:
        return [Problem(
            f"kid template {times.shown(ks.kid)} uses unknown placeholder(s) {', '.join(sorted(unknown))};"
            f" allowed: {', '.join('{' + p + '}' for p in KID_PLACEHOLDERS)} (e.g. 'sha256:{{thumbprint}}'),"
            " or 'thumbprint'",
            name, None, "kid",
        )]
    if any(spec or conversion for _, f, spec, conversion in parsed if f is not None):
        return [Problem(
            f"kid template {times.shown(ks.kid)} formats a placeholder ('{{name:spec}}' or '{{name!r}}');"
            " write placeholders plainly, e.g. {generation}, so every generation keeps its own kid",
            name, None, "kid",
        )]
    if not fields & {"generation", "thumbprint"} and len(ks.generations) > 1:
        return [Problem(
            f"kid template {ks.kid!r} gives every generation the same kid; include {{generation}} or"
            " {thumbprint}",
            name, None, "kid",
        )]
    out: list[Problem] = []
    seen: dict[str, str] = {}
    for g in ks.generations:
        kid = _render_kid(ks, name, g, environment)
        why = names.kid_problem(kid)
        sampled = kid_needs_key(ks.kid) and not g.public_key_pem
        if why and sampled:
            out.append(Problem(f"{why} (kid template {times.shown(ks.kid)}, with a 43-character RFC 7638"
                               " thumbprint standing for {thumbprint})", name, None, "kid"))
            break
        if why:
            out.append(Problem(why, name, g.id, "kid"))
            break
        if sampled:
            continue  # a generated key's thumbprint: its own, unknown until it exists, unique by the key
        if kid in seen:
            out.append(Problem(f"kid '{kid}' is also generation '{seen[kid]}''s kid; kids are unique in a"
                               " keyset",
                               name, g.id, "kid"))
        seen.setdefault(kid, g.id)
    return out


def _render_kid(ks: KeySetConfig, name: str, generation: Generation, environment: str) -> str:
    """The generation's kid as the program renders it; a thumbprint template takes the external
    key's real thumbprint, or :data:`SAMPLE_THUMBPRINT` for a key not generated yet."""
    from ..keys import normalize_public_pem, render_kid, thumbprint

    sample = None
    if kid_needs_key(ks.kid):
        sample = SAMPLE_THUMBPRINT
        if generation.public_key_pem:
            # A publicKeyPem that does not load is reported on that field.
            with contextlib.suppress(ValueError, TypeError):
                sample = thumbprint(normalize_public_pem(generation.public_key_pem))
    return render_kid(ks.kid, keyset=name, generation=generation.id, environment=environment,
                      thumbprint=sample)


def _validate_publish(stack: StackConfig, name: str, ks: KeySetConfig,
                      spec: algorithms.Algorithm) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, pub in enumerate(ks.publish):
        field = f"publish[{i}]"
        if pub.format is Format.ANCHOR:
            out.append(Problem(
                "an anchor lists the keys of several keysets: declare it in the stack's"
                " key-rotation:trustAnchors (trustAnchorId, purlPattern, keysets, allowedPredicateTypes,"
                " policyVersion, target), not in a keyset's publish list", name, None, f"{field}.format",
            ))
        elif pub.format.needs_public_key and not spec.publishes_public_key:
            out.append(Problem(
                f"a {ks.purpose} keyset has no public key to publish; only 'key-history' and 'metrics'"
                f" are allowed, not '{pub.format}'", name, None, f"{field}.format",
            ))
        elif pub.format is Format.JWKS and not spec.has_jwk:
            out.append(Problem(
                f"JOSE defines no JWK key type for {ks.algorithm}: a JWKS cannot carry it; publish"
                " signers, trust-anchor or key-history (they carry the SPKI)", name, None, f"{field}.format",
            ))
        root = None if targets.root_problem(stack.publish_root) else stack.publish_root
        why = targets.target_problem(pub.target, root)
        if why:
            out.append(Problem(why, name, None, f"{field}.target"))
        elif pub.scheme == "configmap" and stack.kubernetes is None:
            out.append(Problem(
                "a configmap:// target needs the stack's kubernetes.context", name, None, f"{field}.target"
            ))
        if pub.target in seen:
            out.append(Problem(f"target {times.shown(pub.target)} is listed twice", name, None,
                               f"{field}.target"))
        seen.add(pub.target)
        if pub.format is Format.REVOCATION_LIST:
            for why, where in _revocation_list_problems(ks, pub):
                out.append(Problem(why, name, None, f"{field}.{where}"))
        elif pub.envelope is not None:
            why = _envelope_problem(ks, pub.format, pub.scheme)
            if why:
                out.append(Problem(why, name, None, f"{field}.envelope"))
    return out


def _envelope_problem(ks: KeySetConfig, format: str, scheme: str) -> str | None:
    """Why this keyset cannot publish a ``format`` document signed (``envelope: dsse``), if it cannot."""
    if ks.purpose is not Purpose.SIGN:
        return (f"only a sign keyset's generations can sign a document; this {ks.purpose} keyset's keys"
                " cannot: publish it without 'envelope', or from a sign keyset")
    if not envelope.signable(format):
        return (f"a '{format}' document is text for a scraper, which cannot unwrap an envelope; sign"
                " only the JSON documents (jwks, signers, trust-anchor, key-history)")
    why = _signing_problem(ks, scheme, "remove 'envelope' or sign with")
    if why:
        return why
    if ks.backend is Backend.AWS_KMS and ks.spec.kty in ("OKP", "AKP") and format == "key-history":
        return (f"AWS KMS signs {ks.algorithm} only over a message of at most"
                f" {envelope.RAW_SIGN_LIMIT} bytes (no digest signing that a plain {ks.algorithm}"
                " verifier accepts), and the key history grows with every generation; sign the jwks,"
                " signers or trust-anchor document instead")
    return None


def _signing_problem(ks: KeySetConfig, scheme: str, instead: str) -> str | None:
    """Why this keyset's generations cannot sign what the publisher writes to a ``scheme`` target,
    if they cannot: the backend that holds no private key here (``external``; software, aws-kms,
    gcp-kms and pkcs11 keys sign), and the targets written without the publisher. Shared by the
    DSSE envelope and the revocation list (one signing path, components/signing.py); ``instead``:
    what the message advises, e.g. "remove 'envelope' or sign with"."""
    if ks.backend is Backend.EXTERNAL:
        return (f"backend 'external' holds no private key here, so nothing can sign; {instead} a"
                " software, aws-kms, gcp-kms or pkcs11 keyset")
    if scheme == "configmap":
        return ("a configmap:// document is written by the Kubernetes provider, which cannot sign;"
                " publish the signed document to a file://, s3:// or gs:// target")
    return None


def _revocation_list_problems(ks: KeySetConfig, pub: Publication) -> list[tuple[str, str]]:
    """Why this keyset cannot publish a revocation list (each line a JWS by its active generation),
    with the field each reason is about (``format``, ``target``, ``envelope``)."""
    if ks.purpose is not Purpose.SIGN:
        return [(f"a revocation list is signed line by line by the keyset's active key; this {ks.purpose}"
                 " keyset's keys cannot sign: publish it from a sign keyset", "format")]
    out: list[tuple[str, str]] = []
    if pub.envelope is not None:
        out.append(("each line of a revocation list is already a JWS signed by the active key, and its"
                    " verifiers read JSON Lines, not an envelope; remove 'envelope'", "envelope"))
    if not revocation.signable(ks.algorithm):
        out.append((f"a revocation list's lines are JWS that JOSE verifiers check; no JOSE library here"
                    f" verifies {ks.algorithm} (JWS is defined for EdDSA, ES*, RS* and PS*): publish the"
                    " revocation list from such a keyset", "format"))
    why = _signing_problem(ks, pub.scheme, "publish the revocation list from")
    if why:
        out.append((why, "target" if pub.scheme == "configmap" else "format"))
    return out


def _validate_consumers(stack: StackConfig, name: str, ks: KeySetConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, consumer in enumerate(ks.consumers):
        field = f"consumers[{i}]"
        refs = (
            [consumer.deployment] if isinstance(consumer, DeploymentConsumer)
            else [consumer.secret, *consumer.restart]
        )
        for ref in refs:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?", ref):
                out.append(Problem(f"{ref!r} must be namespace/name (lowercase DNS names)", name, None,
                                   field))
        if stack.kubernetes is None:
            out.append(Problem("consumers need the stack's kubernetes.context", name, None, field))
        sources = (
            list(consumer.env.values()) + list(consumer.material.values())
            if isinstance(consumer, DeploymentConsumer) else list(consumer.data.values())
        )
        if ("material" in sources or "keyring" in sources) and not BACKENDS[ks.backend].holds_material:
            out.append(Problem(
                f"key material cannot be delivered from backend {ks.backend}: its private key never"
                " leaves the KMS/HSM; deliver kid/keyId/keyArn/keyName instead", name, None, field,
            ))
        if "keyArn" in sources and not BACKENDS[ks.backend].key_arn:
            out.append(Problem(f"keyArn is only known for backend {_having('key_arn')}", name, None, field))
        if "keyName" in sources and not BACKENDS[ks.backend].key_name:
            out.append(Problem(
                "keyName is only known for backends gcp-kms (the version name) and pkcs11 (the key's"
                " PKCS#11 URI)", name, None, field,
            ))
        if "keyring" in sources and ks.purpose == "sign":
            out.append(Problem(
                "a sign keyset delivers only its active private key (material); verifiers use the"
                " published public keys, so there is no keyring to deliver", name, None, field,
            ))
        out += _consumer_names(name, field, consumer)
    return out


_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _consumer_names(name: str, field: str, consumer: DeploymentConsumer | SecretConsumer) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(consumer, SecretConsumer):
        if not consumer.data:
            out.append(Problem("names no data to deliver", name, None, f"{field}.data"))
        for key in consumer.data:
            if not _SECRET_KEY.fullmatch(key):
                out.append(Problem(f"{key!r} is not a valid Secret key ([-._a-zA-Z0-9]+)", name, None,
                                   f"{field}.data"))
        return out
    names = [*consumer.env, *consumer.material, *consumer.values]
    if not names:
        out.append(Problem("names no env to deliver (env, material or values)", name, None, field))
    for var in sorted(set(names)):
        if names.count(var) > 1:
            out.append(Problem(f"env var {var!r} is set more than once (env, material, values)", name, None,
                               field))
        if not _ENV_NAME.fullmatch(var):
            out.append(Problem(f"{var!r} is not a valid env var name", name, None, field))
    if consumer.container is not None and not _DNS_LABEL.fullmatch(consumer.container):
        out.append(Problem(f"{consumer.container!r} is not a container name (a DNS label)", name, None,
                           f"{field}.container"))
    return out


def _validate_delivery(stack: StackConfig) -> list[Problem]:
    """Across keysets: one owner per Secret, per env var of a container, per ConfigMap."""
    out: list[Problem] = []
    secrets: dict[str, str] = {}
    env: dict[tuple[str, str, str], str] = {}
    for name, ks in stack.keysets.items():
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?", name) and (ks.consumers or any(
                p.scheme == "configmap" for p in ks.publish)):
            out.append(Problem(
                "a keyset delivered to Kubernetes needs a lowercase DNS name of at most 54 characters"
                " (it names the rollout annotation and owned objects)", name, None, None,
            ))
        for i, consumer in enumerate(ks.consumers):
            field = f"consumers[{i}]"
            if isinstance(consumer, SecretConsumer):
                if consumer.secret in secrets:
                    out.append(Problem(
                        f"Secret {consumer.secret!r} is already delivered by keyset"
                        f" '{secrets[consumer.secret]}';"
                        " a Secret has one owner", name, None, field,
                    ))
                secrets.setdefault(consumer.secret, name)
                continue
            container = consumer.container or consumer.deployment.rpartition("/")[2]
            for var in (*consumer.env, *consumer.material, *consumer.values):
                key = (consumer.deployment, container, var)
                if key in env and env[key] != name:
                    out.append(Problem(
                        f"env var {var!r} of {consumer.deployment} (container {container!r}) is already"
                        f" delivered by keyset '{env[key]}'", name, None, field,
                    ))
                env.setdefault(key, name)
    return out


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PURL_PATTERN = re.compile(r"\*|pkg:[a-z][a-z0-9.+-]*/[\x21-\x7e]*")
_TOKEN = re.compile(r"[\x21-\x7e]+")
"""Printable ASCII without spaces: predicate types (``evidence.stella/v1``), policy versions."""


def _validate_trust_anchors(stack: StackConfig) -> list[Problem]:
    """Seed 002's trust anchors: ids and patterns unique, keysets that exist and sign, a target."""
    out: list[Problem] = []
    ids: dict[str, int] = {}
    patterns: dict[str, str] = {}
    root = None if targets.root_problem(stack.publish_root) else stack.publish_root
    for i, anchor in enumerate(stack.trust_anchors):
        where = f"trustAnchors[{i}]"
        named = f"trust anchor '{anchor.trust_anchor_id[:64]}'"

        def problem(message: str, field: str, named: str = named, where: str = where) -> None:
            out.append(Problem(f"{named}: {message}", None, None, f"{where}.{field}"))

        if not _UUID.fullmatch(anchor.trust_anchor_id):
            problem(f"trustAnchorId {times.shown(anchor.trust_anchor_id)} is not a UUID"
                    " (8-4-4-4-12 hex digits, e.g. 550e8400-e29b-41d4-a716-446655440000); verifiers look"
                    " the anchor up by it, so keep it stable forever", "trustAnchorId")
        seen = ids.setdefault(anchor.trust_anchor_id.lower(), i)
        if seen != i:
            problem(f"trustAnchorId is also trustAnchors[{seen}]'s; every anchor has its own",
                    "trustAnchorId")
        if not _PURL_PATTERN.fullmatch(anchor.purl_pattern) or "*" in anchor.purl_pattern[:-1]:
            problem(f"purlPattern {times.shown(anchor.purl_pattern)} is not a PURL pattern: '*', or"
                    " 'pkg:<type>/' and the rest of a package URL (printable ASCII, no spaces), with '*'"
                    " only at the end (pkg:npm/*, pkg:maven/org.apache.*)", "purlPattern")
        other = patterns.setdefault(anchor.purl_pattern, anchor.trust_anchor_id)
        if other != anchor.trust_anchor_id:
            problem(f"purlPattern {times.shown(anchor.purl_pattern)} is also trust anchor '{other}''s; a"
                    " verifier looking up the anchor of a package would find two", "purlPattern")
        for j, keyset in enumerate(anchor.keysets):
            field = f"keysets[{j}]"
            ks = stack.keysets.get(keyset)
            if ks is None:
                problem(f"names keyset {times.shown(keyset)}, which this stack does not have (keysets:"
                        f" {', '.join(stack.keysets) or 'none'})", field)
            elif ks.purpose != "sign":
                problem(f"keyset '{keyset}' has purpose {ks.purpose}; an anchor lists signing keys, so"
                        " name sign keysets only", field)
            if keyset in anchor.keysets[:j]:
                problem(f"keyset '{keyset}' is listed twice", field)
        for j, predicate in enumerate(anchor.allowed_predicate_types):
            field = f"allowedPredicateTypes[{j}]"
            if not _TOKEN.fullmatch(predicate):
                problem(f"predicate type {times.shown(predicate)} must be printable ASCII without spaces"
                        " (e.g. evidence.stella/v1)", field)
            elif predicate in anchor.allowed_predicate_types[:j]:
                problem(f"predicate type '{predicate}' is listed twice", field)
        if not _TOKEN.fullmatch(anchor.policy_version):
            problem(f"policyVersion {times.shown(anchor.policy_version)} must be printable ASCII without"
                    " spaces (e.g. v2.3.1)", "policyVersion")
        why = targets.target_problem(anchor.target, root)
        if why:
            problem(why, "target")
        elif anchor.publication.scheme == "configmap" and stack.kubernetes is None:
            problem("a configmap:// target needs the stack's kubernetes.context", "target")
    return out


def _validate_unique(stack: StackConfig) -> list[Problem]:
    """Across keysets: one publication per target, one keyset per kid and per external key."""
    out: list[Problem] = []
    owners: dict[str, str] = {}
    files: dict[tuple[str, ...], tuple[str, str]] = {}
    kids: dict[str, tuple[str, str]] = {}
    keys: dict[str, tuple[str, str]] = {}
    # Every publication, the keysets' and the trust anchors': (owner and label as messages name it,
    # keyset of the problem, field, publication).
    publications: list[tuple[str, str, str | None, str, Publication]] = [
        (f"keyset '{name}'", name, name, f"publish[{i}].target", pub)
        for name, ks in stack.keysets.items() for i, pub in enumerate(ks.publish)]
    publications += [(f"trust anchor '{a.trust_anchor_id}'", f"trust anchor '{a.trust_anchor_id}'", None,
                      f"trustAnchors[{i}].target", a.publication) for i, a in enumerate(stack.trust_anchors)]
    for owner_name, label, name, field, pub in publications:
        owner = owners.get(pub.target)
        if owner is not None and owner != owner_name:
            out.append(Problem(
                f"target {times.shown(pub.target)} is already published by {owner}; two"
                " publications"
                " cannot share a target (one document would replace the other)", name, None, field,
            ))
        owners.setdefault(pub.target, owner_name)
        if pub.scheme == "file":
            parts = tuple(pub.location.split("/"))
            for other, (other_target, other_name) in files.items():
                shorter, longer = sorted((parts, other), key=len)
                if len(shorter) < len(longer) and longer[:len(shorter)] == shorter:
                    out.append(Problem(
                        f"target {times.shown(pub.target)} and {other_name}'s"
                        f" {times.shown(other_target)}:"
                        " one is a directory of the other", name, None, field,
                    ))
            files.setdefault(parts, (pub.target, label))
    for name, ks in stack.keysets.items():
        # Kids verifiers see (in a JWKS, signers.json, trust anchor or seed 002 anchor) are unique
        # across the stack, so that documents a verifier combines never hold one kid for two keys.
        publishes_kids = any(p.format.lists_kids for p in ks.publish) or bool(stack.anchors_naming(name))
        # A thumbprint kid is the key's: two keysets share one only if they share a key (refused below).
        if not kid_needs_key(ks.kid) and publishes_kids and not any(
                p.keyset == name and p.field == "kid" for p in out):
            for g in ks.generations:
                try:
                    kid = _render_kid(ks, name, g, stack.environment)
                except (ValueError, KeyError, IndexError):
                    break
                seen = kids.get(kid)
                if seen is not None and seen[0] != name:
                    out.append(Problem(
                        f"kid '{kid[:80]}' is also the kid of keyset '{seen[0]}' generation '{seen[1]}';"
                        " a verifier could not tell the keys apart", name, g.id, "kid",
                    ))
                kids.setdefault(kid, (name, g.id))
        if ks.backend == "external":
            for g in ks.generations:
                fingerprint = _public_key_fingerprint(g.public_key_pem)
                if fingerprint is None:
                    continue
                seen = keys.get(fingerprint)
                if seen is not None:
                    where = "keyset '" + seen[0] + "' " if seen[0] != name else ""
                    out.append(Problem(
                        f"the same public key as {where}generation '{seen[1]}'; every generation needs a key"
                        " of its own (a key published by two generations or keysets cannot be retired alone)",
                        name, g.id, "publicKeyPem",
                    ))
                keys.setdefault(fingerprint, (name, g.id))
    return out


def _public_key_fingerprint(pem: str | None) -> str | None:
    from ..keys import normalize_public_pem

    if not pem:
        return None
    try:
        return normalize_public_pem(pem)
    except (ValueError, TypeError):
        return None


def _validate_not_future(stack: StackConfig, now: datetime) -> list[Problem]:
    out: list[Problem] = []
    for name, ks in stack.keysets.items():
        for g in ks.generations:
            for camel in (*TIME_ORDER, "revokedAt"):
                t = g.time(camel)
                why = times.future_problem(t, now) if t is not None else None
                if why:
                    out.append(Problem(why, name, g.id, camel))
    return out


def _validate_generations(
    stack: StackConfig, name: str, ks: KeySetConfig, spec: algorithms.Algorithm | None
) -> list[Problem]:
    out: list[Problem] = []
    ids: set[str] = set()
    for i, gen in enumerate(ks.generations):
        def problem(message: str, field: str | None = None, gen: Generation = gen) -> None:
            out.append(Problem(message, name, gen.id, field))

        why = names.id_problem(gen.id, "generation id")
        if why:
            problem(why, "id")
        if gen.id in ids:
            problem(f"duplicate generation id (generation #{i + 1}); ids are unique and stable forever", "id")
        ids.add(gen.id)
        previous = ks.generations[i - 1] if i else None
        if previous is not None and gen.created_at < previous.created_at:
            problem(
                f"createdAt ({_iso(gen.created_at)}) is before the createdAt of the generation listed before"
                " it,"
                f" '{previous.id}' ({_iso(previous.created_at)}); generations are listed oldest first",
                "createdAt",
            )
        _validate_history(gen, problem)
        if gen.state is State.REVOKED and gen.revoke_reason is None:
            problem(f"is required when state is 'revoked' ({', '.join(REVOKE_REASONS)})", "revokeReason")
        if gen.revoke_reason is not None and gen.state is not State.REVOKED:
            problem(f"must not be set while state is '{gen.state}'", "revokeReason")
        if gen.trigger is Trigger.COMPROMISE and gen.state is State.PENDING:
            problem("a compromise replacement is never pending: `revoke KEYSET GENERATION --reason"
                    " compromise` activates it at once (seed 003: revoke the old key first); use scheduled,"
                    " personnel or hardware for a planned rotation", "trigger")
        present = [(f, t) for f in TIME_ORDER if (t := gen.time(f)) is not None]
        for (first, t1), (second, t2) in zip(present, present[1:], strict=False):
            if t2 < t1:
                problem(f"{second} ({_iso(t2)}) is before {first} ({_iso(t1)})", second)
        last_field, last = present[-1]
        if gen.history:
            last_field, last = "history[-1].at", gen.history[-1].at
        if gen.revoked_at is not None and gen.revoked_at < last:
            problem(f"revokedAt ({_iso(gen.revoked_at)}) is before {last_field} ({_iso(last)})", "revokedAt")
        if gen.rewrapped and (spec is None or ks.purpose == "sign" or not ks.keeps_data):
            problem("only an encrypt/mac keyset with data at rest records re-encryptions", "rewrapped")
        for j, rewrap in enumerate(gen.rewrapped):
            if rewrap.at < gen.created_at or (j and rewrap.at < gen.rewrapped[j - 1].at):
                problem(f"{_iso(rewrap.at)} is before createdAt or an earlier entry; entries are appended in"
                        " order", f"rewrapped[{j}].at")
        if ks.backend == "external":
            if gen.public_key_pem is None:
                problem("is required for backend external", "publicKeyPem")
            elif spec is not None:
                message = _check_public_key(gen.public_key_pem, spec, ks.rsa_key_size)
                if message:
                    problem(message, "publicKeyPem")
        elif gen.public_key_pem is not None:
            problem(f"only backend external takes a publicKeyPem (this keyset is {ks.backend})",
                    "publicKeyPem")
        if gen.restored_key_id is not None:
            why = restored_key_problem(stack, ks, gen)
            if why:
                problem(why, "restoredKeyId")
    out += [Problem(why, name, None, "generations") for why in keyset_problems(ks.purpose, ks.generations)]
    return out


def _validate_history(gen: Generation, problem: Callable[[str, str], None]) -> None:
    """The top-level times are the first pass; ``history`` continues it step by step, and
    revokedAt (terminal) ends it."""
    first = first_pass(gen)
    described = first[-1][0] if gen.history else gen.state
    for field in REQUIRED_TIMES[described]:
        if gen.time(field) is None:
            problem(f"is required when state is '{gen.state}'" if not gen.history else
                    f"is required: the history continues from '{described}'", field)
    for field in FORBIDDEN_TIMES[described]:
        if field == "revokedAt" and gen.history:
            continue  # the terminal step after the history
        if gen.time(field) is not None:
            problem(f"must not be set while state is '{gen.state}'" if not gen.history else
                    f"must not be set: the first pass ended in '{described}'; later steps are in 'history'",
                    field)
    if not gen.history:
        return
    previous, previous_at = first[-1]
    for j, step in enumerate(gen.history):
        field = f"history[{j}]"
        if step.state in (State.PENDING, State.REVOKED):
            problem(f"'{step.state}' is not a history step ({STATE_TIME[step.state]} records it)",
                    f"{field}.state")
        elif not allowed(previous, step.state):
            problem(f"cannot go from '{previous}' to '{step.state}'", f"{field}.state")
        if step.at < previous_at:
            problem(f"{_iso(step.at)} is before the previous step ({_iso(previous_at)}); history is"
                    " appended in order", f"{field}.at")
        previous, previous_at = step.state, step.at
    final = State.REVOKED if gen.revoked_at is not None else previous
    if final is not gen.state:
        problem(f"is '{gen.state}' but its history ends in '{final}'", "state")


_AWS_KEY_ID = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_GCP_VERSION_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/(?P<ring>[^/]+)"
    r"/cryptoKeys/(?P<key>[^/]+)/cryptoKeyVersions/[1-9][0-9]*$"
)


RESTORABLE_BACKENDS: tuple[str, ...] = tuple(b.value for b, traits in BACKENDS.items() if traits.kms)
"""Backends whose destroyed key waits out a deletion window in which ``restore`` can bring it back."""


def was_restored_from_destroyed(gen: Generation) -> bool:
    """Whether the generation left ``destroyed`` again (a restore within the deletion window)."""
    steps = [state for state, _ in history_path(gen)]
    return any(a is State.DESTROYED and b is not State.DESTROYED
               for a, b in zip(steps, steps[1:], strict=False))


def restored_key_problem(stack: StackConfig, ks: KeySetConfig, gen: Generation) -> str | None:
    """What is wrong with a generation's ``restoredKeyId`` (None: nothing)."""
    key = gen.restored_key_id or ""
    if not BACKENDS[ks.backend].kms:
        return (f"only a KMS key ({', '.join(RESTORABLE_BACKENDS)}) is restored from its deletion window"
                f" (this keyset is {ks.backend})")
    if not was_restored_from_destroyed(gen):
        return ("is written by `restore` for a generation brought back from 'destroyed'; its history has no"
                " step from 'destroyed' back to 'retiring'")
    if ks.backend == Backend.AWS_KMS:
        if not _AWS_KEY_ID.match(key):
            return (f"{key!r} is not an AWS KMS key id (a UUID, or mrk- and 32 hex digits for a multi-Region"
                    " key)")
        return None
    match = _GCP_VERSION_NAME.match(key)
    if match is None:
        return (f"{key!r} is not a Cloud KMS CryptoKeyVersion name"
                " (projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N)")
    gcp = ks.gcp
    project = gcp.project or stack.other.get("gcp:project")
    expected = {"project": project, "location": gcp.location, "ring": gcp.key_ring, "key": ks.name}
    wrong = [f"{part} {match.group(part)!r} (the keyset's is {want!r})" for part, want in expected.items()
             if want is not None and match.group(part) != want]
    if wrong:
        return f"{key!r} is not a version of this keyset's CryptoKey: " + ", ".join(wrong)
    return None


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def _check_public_key(pem: str, spec: algorithms.Algorithm, key_size: int) -> str | None:
    from ..keys import describe_public_key, load_public_key

    blocks = _PEM_BLOCK.findall(pem)
    if blocks != ["PUBLIC KEY"]:
        found = ", ".join(f"'{b}'" for b in blocks) or "none"
        return f"must hold exactly one PEM 'PUBLIC KEY' block and nothing else (found: {found})"
    body = pem.strip()
    if not (body.startswith("-----BEGIN PUBLIC KEY-----") and body.endswith("-----END PUBLIC KEY-----")):
        return "must hold exactly one PEM 'PUBLIC KEY' block and nothing else (text around the block)"
    try:
        key = load_public_key(pem)
    except ValueError as error:
        return f"is not a PEM public key: {str(error).split(' See https')[0][:120]}"
    actual = describe_public_key(key)
    expected: tuple[str, object]
    if spec.kty in ("AKP", "SPKI"):
        expected = (spec.kty, spec.name if spec.kty == "AKP" else spec.spki_algorithm)
        if actual != expected:
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
        return None
    expected = (spec.kty, spec.curve if spec.kty != "RSA" else key_size)
    if spec.kty == "RSA":
        if actual[0] != "RSA":
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs an RSA key of {key_size} bits"
        if actual[1] != key_size:
            return (f"holds an RSA {actual[1]} key but the keyset's keySize is {key_size};"
                    f" set keySize: {actual[1]} or give an RSA {key_size} key")
        return None
    if actual != expected:
        return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
    return None


_iso = format_time


def _having(trait: str) -> str:
    """The backends that have a trait of :data:`keyrotation.algorithms.BACKENDS`, for messages."""
    return ", ".join(b for b, traits in BACKENDS.items() if getattr(traits, trait))
