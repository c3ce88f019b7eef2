"""The stack file contract (docs/config.md): its typed model, its rules and their one entry point.

``model`` (what each field may hold), ``problems`` (a problem names the stack file, keyset,
generation and field; pydantic's errors become problems), ``rules`` (the contract and cloud rules
between fields, in one pass per keyset) and ``loading`` (:func:`load`: the file's text or the
engine's map, checked, typed, validated; all problems reported together, before any resource is
registered). The names below are the package's interface; import them from here.
"""

from __future__ import annotations

from ..names import PROJECT
from .loading import from_config_map, load, load_stack_file, namespace_problem, parse
from .model import (
    ENV_SOURCES,
    KID_PLACEHOLDERS,
    PIN_KEY,
    PUBLISH_FORMATS,
    PUBLISH_SCHEMES,
    RANGES,
    SECRET_SOURCES,
    Alerts,
    AwsOptions,
    Consumer,
    DeploymentConsumer,
    GcpOptions,
    Generation,
    KeySetConfig,
    Kubernetes,
    Pkcs11Options,
    Publication,
    Rewrap,
    SecretConsumer,
    StackConfig,
    Step,
    TimingOverrides,
    TrustAnchor,
)
from .problems import ConfigError, Problem
from .rules import validate

__all__ = [
    "ENV_SOURCES", "KID_PLACEHOLDERS", "PIN_KEY", "PROJECT", "PUBLISH_FORMATS", "PUBLISH_SCHEMES", "RANGES",
    "SECRET_SOURCES", "Alerts", "AwsOptions", "ConfigError", "Consumer", "DeploymentConsumer", "GcpOptions",
    "Generation", "KeySetConfig", "Kubernetes", "Pkcs11Options", "Problem", "Publication", "Rewrap",
    "SecretConsumer",
    "StackConfig", "Step", "TimingOverrides", "TrustAnchor", "from_config_map", "load", "load_stack_file",
    "namespace_problem",
    "parse", "validate",
]
