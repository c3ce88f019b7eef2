"""The REAL policy pack over gRPC, on what every stack file registers under the engine-faithful harness.

`python policy/__main__.py` runs as its own process (once for this module); each stack runs through
`tests/engine.py` (`up`, `preview`) with the emulated clouds behind its KMS keys and buckets
(`tests/kms_emulators.cloud_engine`); its resources go to `Analyze` / `AnalyzeStack` as the CLI
sends them, with that environment's `policy/config/<env>.json`. The evaluation time is injected
through the policy config's `now`, the publisher's clock through KEY_ROTATION_NOW.
"""

from __future__ import annotations

import base64
import json
import os
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from pulumi.runtime.proto import analyzer_pb2

from keyrotation.lifecycle import Timings, default_warn_days
from keyrotation.metadata import parse_time
from keyrotation.times import format_time
from tests.engine import Engine, EngineRun, ProgramFailed
from tests.kms_emulators import cloud_engine
from tests.policy_client import CONFIGS, Diagnostic, PolicyConfigInvalid, PolicyPackProcess, reconcile
from tests.project import ROOT, copy_project, stack_config

pytestmark = pytest.mark.slow

STACKS = tuple(sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml")))
"""Every stack file of the project (each needs its environment's policy config)."""

SHIPPED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The day the stack files describe: they must pass the policies then."""

AGE_POLICIES = ("key-max-age", "key-age-warning")
ADVISORY_POLICIES = {"key-age-warning", "unmanaged-key"}
ALL_POLICIES = {
    "key-max-age", "key-age-warning", "unmanaged-key", "algorithm-allowed-by-profile",
    "deletion-window-minimum",
    "key-resources-protected", "published-documents-public-only", "no-key-material-in-configmaps",
    "no-key-material-in-env", "one-active-generation", "active-kid-published", "publish-lead",
    "retire-after-overlap", "revoked-key-unpublished", "key-material-only-in-secrets",
}


@contextmanager
def publisher_clock(when: datetime):
    previous = os.environ.get("KEY_ROTATION_NOW")
    os.environ["KEY_ROTATION_NOW"] = format_time(when)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KEY_ROTATION_NOW", None)
        else:
            os.environ["KEY_ROTATION_NOW"] = previous


@pytest.fixture(scope="module")
def pack():
    with PolicyPackProcess() as process:
        yield process


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> dict[str, tuple[Engine, EngineRun]]:
    """Every stack deployed once, on the day its file describes."""
    runs: dict[str, tuple[Engine, EngineRun]] = {}
    for stack in STACKS:
        engine = cloud_engine(copy_project(tmp_path_factory.mktemp(stack) / "project"), stack)
        with publisher_clock(SHIPPED_AT):
            runs[stack] = (engine, engine.up())
    return runs


def config_of(env: str) -> dict:
    return json.loads((CONFIGS / f"{env}.json").read_text())


def analyze(pack: PolicyPackProcess, run: EngineRun, stack: str, now: datetime, config: dict | None = None):
    pack.configure(config if config is not None else config_of(stack), now=format_time(now))
    return pack.analyze(run, stack=stack)


def mandatory(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.level == "mandatory"]


def keysets_named(diagnostics: list[Diagnostic], policy: str) -> set[str]:
    named = set()
    for d in diagnostics:
        if d.policy == policy:
            named.add(d.message.split("keyset '", 1)[1].split("'", 1)[0])
    return named


def active_since(stack: str) -> dict[str, datetime]:
    keysets = stack_config(stack)["key-rotation:keysets"]
    # Keysets whose key the program manages (an external key has no resource for the pack to judge).
    return {name: parse_time(next(g["activatedAt"] for g in ks["generations"] if g["state"] == "active"))
            for name, ks in keysets.items() if ks.get("backend") != "external"}


def limit(env: str, keyset: str, purpose: str) -> tuple[float, float]:
    """(maxAgeDays, warnDays) of a keyset, read independently: the stack file's own limit, unless the
    environment's policy config (its ceiling) is shorter."""
    config = config_of(env)["key-max-age"]
    ceiling: tuple[float, float] = (Timings.max_age_days, Timings.warn_days)
    for level in ((config.get("keysets") or {}).get(keyset), (config.get("purposes") or {}).get(purpose),
                  config):
        if level and "maxAgeDays" in level:
            ceiling = level["maxAgeDays"], level.get("warnDays", default_warn_days(level["maxAgeDays"]))
            break
    stack = stack_config(env)
    defaults, own = stack.get("key-rotation:defaults") or {}, stack["key-rotation:keysets"][keyset]
    max_age = own.get("maxAgeDays", defaults.get("maxAgeDays", Timings.max_age_days))
    warn = own.get("warnDays", defaults.get("warnDays", default_warn_days(max_age)))
    return (max_age, warn) if max_age <= ceiling[0] else ceiling


def due_dates(stack: str) -> dict[str, tuple[datetime, datetime]]:
    """keyset -> (warn from, due at) under the stack's environment policy."""
    keysets = stack_config(stack)["key-rotation:keysets"]
    out = {}
    for name, activated in active_since(stack).items():
        max_age, warn = limit(stack, name, keysets[name]["purpose"])
        due = activated + timedelta(days=max_age)
        out[name] = (due - timedelta(days=warn), due)
    return out


# ---------------------------------------------------------------------------------------------


def test_the_pack_describes_its_policies_and_their_limits(pack):
    info = pack.info()

    assert info.name == "key-rotation" and info.supportsConfig
    policies = {p.name: p for p in info.policies}
    assert set(policies) == ALL_POLICIES
    assert policies["key-max-age"].enforcementLevel == analyzer_pb2.MANDATORY
    assert policies["key-age-warning"].enforcementLevel == analyzer_pb2.ADVISORY
    assert policies["publish-lead"].policy_type == analyzer_pb2.POLICY_TYPE_STACK
    assert policies["key-max-age"].policy_type == analyzer_pb2.POLICY_TYPE_RESOURCE
    schema = policies["key-max-age"].configSchema.properties
    assert schema["maxAgeDays"]["default"] == Timings.max_age_days
    assert set(schema) == {"maxAgeDays", "warnDays", "purposes", "keysets", "now"}


@pytest.mark.parametrize("env", STACKS)
def test_each_environment_config_is_valid_for_the_pack_and_its_age_limits_agree(pack, env):
    assert (CONFIGS / f"{env}.json").exists(), f"Pulumi.{env}.yaml has no policy/config/{env}.json"
    config = config_of(env)
    reconciled = reconcile(pack.info(), config)

    assert reconciled["key-max-age"][0] == "mandatory"
    assert reconciled["key-age-warning"][0] == "advisory"
    assert {k: v for k, v in config["key-max-age"].items() if k != "enforcementLevel"} == \
        {k: v for k, v in config["key-age-warning"].items() if k != "enforcementLevel"}


def test_an_invalid_policy_config_is_refused_like_the_cli_does(pack):
    bad = {**config_of("production"), "key-max-age": {"maxAgeDays": "ninety"}}
    with pytest.raises(PolicyConfigInvalid, match="key-max-age: 'ninety' is not of type 'integer'"):
        reconcile(pack.info(), bad)
    with pytest.raises(PolicyConfigInvalid, match="key-max-age: Additional properties are not allowed"):
        reconcile(pack.info(), {"key-max-age": {"purposes": {"sign": {"maxAge": 3}}}})


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_stacks_pass(pack, deployed, stack, tmp_path):
    engine, run = deployed[stack]

    diagnostics = analyze(pack, run, stack, SHIPPED_AT)
    assert mandatory(diagnostics) == []
    assert {d.policy for d in diagnostics} <= ADVISORY_POLICIES

    # So does the preview of the next PR that changes nothing, and a first preview of a new stack
    # (documents and kids unknown, no first-published records yet).
    assert mandatory(analyze(pack, engine.preview(), stack, SHIPPED_AT)) == []
    fresh = cloud_engine(copy_project(tmp_path / "fresh"), stack).preview()
    assert mandatory(analyze(pack, fresh, stack, SHIPPED_AT)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_past_the_maximum_age_every_keyset_fails_with_a_mandatory_diagnostic(pack, deployed, stack):
    _, run = deployed[stack]
    now = max(due for _, due in due_dates(stack).values()) + timedelta(days=1)

    diagnostics = analyze(pack, run, stack, now)

    failed = mandatory(diagnostics)
    assert failed and {d.policy for d in failed} == {"key-max-age"}
    assert keysets_named(failed, "key-max-age") == set(active_since(stack))
    for d in failed:
        assert "maximum age is" in d.message and "python -m keyrotation rotate" in d.message
        assert d.urn.startswith(f"urn:pulumi:{stack}::key-rotation::")


@pytest.mark.parametrize("stack", STACKS)
def test_within_warn_days_there_are_advisory_warnings_only(pack, deployed, stack):
    _, run = deployed[stack]
    dates = due_dates(stack)
    now = min(due for _, due in dates.values()) - timedelta(hours=1)
    expected = {name for name, (warn_from, _) in dates.items() if warn_from <= now}

    diagnostics = analyze(pack, run, stack, now)

    assert mandatory(diagnostics) == []
    assert expected and keysets_named(diagnostics, "key-age-warning") == expected
    assert all(d.level == "advisory" for d in diagnostics if d.policy == "key-age-warning")


def test_a_fips_environment_refuses_the_dev_stacks_non_fips_keysets(pack, deployed):
    _, run = deployed["dev"]
    config = {**config_of("dev"), "algorithm-allowed-by-profile": {"enforcementLevel": "mandatory",
                                                                   "profile": "fips"}}

    failed = mandatory(analyze(pack, run, "dev", SHIPPED_AT, config))

    assert {d.policy for d in failed} == {"algorithm-allowed-by-profile"}
    # The Ed25519 keysets and the ML-DSA one (pqc); the external SM2/GOST keys have no key resource.
    assert keysets_named(failed, "algorithm-allowed-by-profile") == {
        name for name, ks in stack_config("dev")["key-rotation:keysets"].items()
        if ks["algorithm"] in ("EdDSA", "ML-DSA-65")}


# ---------------------------------------------------------------------------------------------
# A rotation as PRs: pending first, then a promotion judged against the publish lead


def test_a_promotion_before_the_publish_lead_fails_and_one_after_it_passes(pack, tmp_path):
    config = stack_config("dev")
    engine = Engine(copy_project(tmp_path / "project"), "dev", config=config)
    with publisher_clock(SHIPPED_AT):
        engine.up()

    # PR 1: a pending generation, written at `created`, deployed (first published) at `published`.
    created = SHIPPED_AT + timedelta(days=1)
    published = created + timedelta(minutes=2)
    gateway = config["key-rotation:keysets"]["atlas-gateway"]["generations"]
    gateway.append({"id": "2026-11-24", "state": "pending", "createdAt": format_time(created)})
    with publisher_clock(published):
        run = engine.up()
    assert mandatory(analyze(pack, run, "dev", published)) == []
    jwks = next(r for r in run.resources.values() if r.name.startswith("atlas-gateway-jwks"))
    assert jwks.outputs["first_published"]["atlas-2026-11-24"] == format_time(published)

    # PR 2: the promotion. The lead is publishMaxAgeSeconds + clockSkewSeconds = 6 minutes.
    def promote(at: datetime) -> None:
        gateway[-2].update(state="retiring", retiringAt=format_time(at))
        gateway[-1].update(state="active", activatedAt=format_time(at))

    in_time = published + timedelta(minutes=6)
    promote(in_time)
    assert mandatory(analyze(pack, engine.preview(), "dev", in_time)) == []

    # One minute after publication. In the preview the promoted key resources update, so their public
    # keys and the documents are unknown and the publisher's records with them: the policy holds the
    # promotion to the generation's createdAt, the domain's fallback.
    too_early = published + timedelta(minutes=1)
    promote(too_early)
    failed = mandatory(analyze(pack, engine.preview(), "dev", too_early))
    assert [d.policy for d in failed] == ["publish-lead"]
    assert "keyset 'atlas-gateway', generation '2026-11-24' (kid atlas-2026-11-24)" in failed[0].message
    assert f"its createdAt {format_time(created)}" in failed[0].message
    assert f"promote after {format_time(created + timedelta(minutes=6))}" in failed[0].message

    # Deployed anyway: at the end of `pulumi up` the stack policy sees the publisher's record and
    # fails the update, naming the time the promotion would have been safe.
    with publisher_clock(too_early):
        run = engine.up()
    pack.configure(config_of("dev"), now=format_time(too_early))
    failed = mandatory(pack.analyze_stack(run, stack="dev"))
    assert [d.policy for d in failed] == ["publish-lead"]
    # Both of the gateway's JWKS targets (plain and signed) were first written then; either is named.
    assert any(f"first published in file://published/atlas/{path} at {format_time(published)}"
               in failed[0].message for path in (".well-known/jwks.json", "jwks.dsse.json"))
    assert f"promote after {format_time(published + timedelta(minutes=6))}" in failed[0].message


def test_key_material_pasted_into_a_stack_file_fails_the_preview(pack, tmp_path):
    config = stack_config("staging")
    engine = cloud_engine(copy_project(tmp_path / "project"), "staging", config=config)
    with publisher_clock(SHIPPED_AT):
        run = engine.up()
    material = next(r.outputs["private_key"].value for r in run.resources.values()
                    if r.name == "secrets-service-2026-q4-key")
    # Someone "fixes" the service by pasting the active key into a Deployment's fixed env values.
    keyset = config["key-rotation:keysets"]["secrets-service"]
    keyset["consumers"].append({"deployment": "aether/secrets-service",
                                "values": {"SECRET_ENCRYPTION_KEY": material}})

    failed = mandatory(analyze(pack, engine.preview(), "staging", SHIPPED_AT))

    assert {d.policy for d in failed} == {"no-key-material-in-env", "key-material-only-in-secrets"}
    assert all(material not in d.message and base64.b64encode(material.encode()).decode() not in d.message
               for d in failed)
    assert any("keyset 'secrets-service', generation '2026-q4'" in d.message for d in failed)


def test_the_pack_starts_the_way_the_cli_launches_it():
    # `python -m pulumi.policy <engine> policy`: runpy runs policy/__main__.py with the pack directory
    # first on sys.path; the policies still import the project's keyrotation package.
    with PolicyPackProcess(via_cli_launcher=True) as launched:
        assert {p.name for p in launched.info().policies} == ALL_POLICIES


# ---------------------------------------------------------------------------------------------
# Cloud guardrails on the production stack's own keys


def test_a_shorter_kms_deletion_window_fails_the_production_preview(pack, tmp_path):
    config = stack_config("production")
    config["key-rotation:defaults"]["deletionWindowDays"] = 7
    run = cloud_engine(copy_project(tmp_path / "project"), "production", config=config).preview()

    failed = mandatory(analyze(pack, run, "production", SHIPPED_AT))

    assert {d.policy for d in failed} == {"deletion-window-minimum"}
    kms = {r.urn for r in run.resources.values() if r.type in ("aws:kms/key:Key",
                                                               "gcp:kms/cryptoKey:CryptoKey")}
    assert {d.urn for d in failed} == kms
    assert all("is 7 days, below the minimum of 30 days (policy config minDeletionWindowDays)" in d.message
               for d in failed)
    # Staging's policy allows a 7-day window.
    staging = stack_config("staging")
    staging["key-rotation:defaults"]["deletionWindowDays"] = 7
    run = cloud_engine(copy_project(tmp_path / "staging"), "staging", config=staging).preview()
    assert mandatory(analyze(pack, run, "staging", SHIPPED_AT)) == []


def test_the_fips_keyset_of_a_default_stack_keeps_to_the_fips_profile(pack, tmp_path):
    # secp256k1 is held by Cloud HSM, and allowed by the stack's default profile, not by fips.
    config = stack_config("production")
    config["key-rotation:keysets"]["stellaops-fips"]["algorithm"] = "ES256K"
    # The keyset's own `profile: fips` makes the program refuse it before any resource...
    with pytest.raises(ProgramFailed, match="keyset 'stellaops-fips', field 'algorithm': ES256K is not "
                                            "allowed"):
        cloud_engine(copy_project(tmp_path / "before"), "production", config=config).preview()
    # ... and without it the pack's policy config (keysets.stellaops-fips: fips) still does.
    del config["key-rotation:keysets"]["stellaops-fips"]["profile"]
    run = cloud_engine(copy_project(tmp_path / "project"), "production", config=config).preview()

    failed = mandatory(analyze(pack, run, "production", SHIPPED_AT))

    assert {d.policy for d in failed} == {"algorithm-allowed-by-profile"}
    assert keysets_named(failed, "algorithm-allowed-by-profile") == {"stellaops-fips"}
    assert "ES256K is not allowed in profile 'fips'" in failed[0].message
