"""The Kubernetes part of the stack file contract: consumers, ownership across keysets, alerts."""

from __future__ import annotations

import pytest

from keyrotation.config import Alerts, ConfigError, parse

T0 = "2026-11-01T09:00:00Z"


def keyset(purpose: str = "encrypt", algorithm: str = "A256GCM", **extra) -> dict:
    return {
        "purpose": purpose, "algorithm": algorithm, "backend": "software",
        "generations": [{"id": "g1", "state": "active", "createdAt": T0, "activatedAt": T0}],
        **extra,
    }


def stack(**keysets) -> dict:
    return {"environment": "staging", "kubernetes": {"context": "aether-staging", "namespace": "aether"},
            "keysets": keysets or {"ss": keyset()}}


def errors(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, stack_file="Pulumi.staging.yaml")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("Pulumi.staging.yaml: invalid key-rotation configuration")
    return [line.strip() for line in lines[1:]]


@pytest.mark.parametrize(("given", "expected"), [
    (True, Alerts()),
    (False, None),
    ({"namespace": "monitoring", "labels": {"release": "prom"}},
     Alerts(namespace="monitoring", labels={"release": "prom"})),
])
def test_alerts_switch(given, expected):
    data = stack()
    data["kubernetes"]["alerts"] = given
    kubernetes = parse(data, stack_file="Pulumi.staging.yaml").kubernetes
    assert kubernetes is not None and kubernetes.alerts == expected


def test_alerts_unknown_key_names_the_field():
    data = stack()
    data["kubernetes"]["alerts"] = {"lables": {"a": "b"}}
    assert errors(data) == ["- field 'kubernetes.alerts.lables': unknown key 'lables'"]


def test_a_bad_source_lists_the_allowed_ones_for_that_consumer_shape_only():
    data = stack(ss=keyset(consumers=[{"secret": "aether/ss", "data": {"KEY": "materiel"}}]))
    assert errors(data) == [
        "- keyset 'ss', field 'consumers.0.data.KEY': 'materiel' is not allowed: 'material', 'keyring',"
        " 'kid', 'keyId', 'keyArn', 'keyName', 'algorithm', 'signersAlgorithm' or 'generation'"]


def test_deployment_consumer_names_are_checked():
    data = stack(ss=keyset(consumers=[
        {"deployment": "aether/app", "container": "App_1", "env": {"1KID": "kid", "KEY_ID": "keyId"},
         "values": {"KEY_ID": "fixed"}},
        {"deployment": "aether/empty"},
        {"secret": "aether/nothing", "data": {}},
    ]))
    assert errors(data) == [
        "- keyset 'ss', field 'consumers[0]': '1KID' is not a valid env var name",
        "- keyset 'ss', field 'consumers[0]': env var 'KEY_ID' is set more than once (env, material, values)",
        "- keyset 'ss', field 'consumers[0].container': 'App_1' is not a container name (a DNS label)",
        "- keyset 'ss', field 'consumers[1]': names no env to deliver (env, material or values)",
        "- keyset 'ss', field 'consumers[2].data': names no data to deliver",
    ]


def test_a_sign_keyset_delivers_no_keyring():
    data = stack(gw=keyset("sign", "EdDSA", consumers=[{"secret": "atlas/gw", "data": {"RING": "keyring"}}]))
    [problem] = errors(data)
    assert problem.startswith("- keyset 'gw', field 'consumers[0]': a sign keyset delivers only its active"
                              " private key (material)")


def test_one_owner_per_secret_env_var_and_configmap():
    data = stack(
        one=keyset(consumers=[{"secret": "aether/shared", "data": {"A": "material"}},
                              {"deployment": "aether/app", "env": {"KEY_ID": "kid"}}],
                   publish=[{"format": "key-history", "target": "configmap://aether/history"}]),
        two=keyset(consumers=[{"secret": "aether/shared", "data": {"B": "material"}},
                              {"deployment": "aether/app", "container": "app", "env": {"KEY_ID": "kid"}},
                              {"deployment": "aether/app", "container": "sidecar", "env": {"KEY_ID": "kid"}}],
                   publish=[{"format": "key-history", "target": "configmap://aether/history"}]),
    )
    assert errors(data) == [
        "- keyset 'two', field 'consumers[0]': Secret 'aether/shared' is already delivered by keyset 'one';"
        " a Secret has one owner",
        "- keyset 'two', field 'consumers[1]': env var 'KEY_ID' of aether/app (container 'app') is already"
        " delivered by keyset 'one'",
        "- keyset 'two', field 'publish[0].target': target 'configmap://aether/history' is already published"
        " by keyset 'one'; two publications cannot share a target (one document would replace the other)",
    ]


def test_a_delivered_keyset_needs_a_kubernetes_name():
    name = "Secrets_Service"
    data = stack(**{name: keyset(consumers=[{"secret": "aether/ss", "data": {"KEY": "material"}}])})
    assert errors(data) == [
        f"- keyset '{name}': a keyset delivered to Kubernetes needs a lowercase DNS name of at most 54"
        " characters (it names the rollout annotation and owned objects)"]


def test_consumers_need_the_cluster():
    data = stack(ss=keyset(consumers=[{"secret": "aether/ss", "data": {"KEY": "material"}}]))
    del data["kubernetes"]
    assert errors(data) == ["- keyset 'ss', field 'consumers[0]': consumers need the stack's "
                            "kubernetes.context"]
