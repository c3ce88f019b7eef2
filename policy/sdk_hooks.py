"""The one place that leans on pulumi-policy's internals: two hooks on its analyzer servicer.

- ``ConfigureStack``: the engine sends the stack, the project and the stack config before any
  analysis; pulumi-policy 1.21 keeps only the tags. The hook hands the rest to
  :mod:`policy.stack_config` (see there for what the real engine gives a pack).
- ``AnalyzeStack``: pulumi-policy calls every stack policy with its own arguments, deserialised
  afresh from the same request. The hook opens a cache for that one request
  (:data:`policy.resources.ANALYSIS`), so what every stack policy reads is built once per analysis
  and never outlives it.

Installed by ``policy/__main__.py`` before the PolicyPack starts serving. Where the servicer's layout
changes, ``install()`` raises at start-up rather than let the pack run without the stack config.
"""

from __future__ import annotations

from typing import Any

from policy import resources, stack_config


def install() -> None:
    from pulumi_policy import policy as _policy

    servicer = _policy._PolicyAnalyzerServicer
    if getattr(servicer, "_key_rotation_hooks", False):
        return
    configure_stack, analyze_stack = servicer.ConfigureStack, servicer.AnalyzeStack

    def on_configure_stack(self: Any, request: Any, context: Any) -> Any:
        stack_config.receive(stack=request.stack, project=request.project, config=dict(request.config))
        return configure_stack(self, request, context)

    def on_analyze_stack(self: Any, request: Any, context: Any) -> Any:
        token = resources.ANALYSIS.set({})
        try:
            return analyze_stack(self, request, context)
        finally:
            resources.ANALYSIS.reset(token)

    # Replacing the SDK servicer's methods is the hook itself (see the module's docstring).
    servicer.ConfigureStack = on_configure_stack  # type: ignore[method-assign,assignment]
    servicer.AnalyzeStack = on_analyze_stack  # type: ignore[method-assign]
    servicer._key_rotation_hooks = True  # type: ignore[attr-defined]
