"""Named presets shared by the rep4d configurations (kept beside them so remote-code exports can copy it flat)."""

from __future__ import annotations

import copy


def preset_values(presets: dict, name: str, method: str, prefixes=(), aliases: dict | None = None) -> dict:
    """A deep copy of ``presets[key]``, where ``key`` is ``name`` lower-cased with ``_`` -> ``-``, the optional
    ``prefixes`` removed in order and ``aliases`` applied; an unknown name is a ValueError listing the presets."""
    key = name.lower().replace("_", "-")
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    key = (aliases or {}).get(key, key)
    if key not in presets:
        raise ValueError(f"unknown {method} preset {name!r}; available: {', '.join(sorted(presets))}")
    return copy.deepcopy(presets[key])
