"""keyrotation.config re-exports its modules' interface (httpx's layout): `__all__` is exactly that."""

from __future__ import annotations

import types

from keyrotation import config


def test_the_config_package_exports_exactly_its_public_names():
    public = {
        name for name, value in vars(config).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public == set(config.__all__)
    assert not {"model", "problems", "rules", "loading"} & set(config.__all__)
