"""The read-side package loads its parts lazily, and still offers every name it promises.

The eager imports it had failed at import time when a name went missing; the lazy ones
would fail only when the name is first used, so this test asks for each name.
"""

from __future__ import annotations

import subprocess
import sys
import types

import projections


def test_every_public_name_has_a_home_and_resolves() -> None:
    assert set(projections.__all__) == set(projections._HOMES)
    for name in projections.__all__:
        assert getattr(projections, name) is not None, name


def test_the_names_shared_with_submodules_are_the_entry_points() -> None:
    # ``query`` and ``replay`` are also submodules: once both are loaded, the package's
    # names must still be the functions of ``projections.api``, not the modules.
    import projections.query
    import projections.replay

    for name in ("query", "replay"):
        entry = getattr(projections, name)
        assert not isinstance(entry, types.ModuleType), name
        assert callable(entry), name


def test_the_replay_applier_loads_neither_the_sql_service_nor_the_settings_nor_nats() -> None:
    probe = ("import sys, projections.replay_applier; "
             "print(sorted(m for m in ('projections.api', 'projections.service', "
             "'pydantic_settings', 'nats', 'services.store.jetstream') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
