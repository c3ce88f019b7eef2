"""The key-rotation CrossGuard policy pack: maximum key age and the rotation guardrails.

``policy/__main__.py`` assembles the pack; the policies live in these modules so tests can import
them without starting the analyzer server.
"""
