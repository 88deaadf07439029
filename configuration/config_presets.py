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


def check_model_type(config_dict: dict, model_type: str, family: str, hint: str = "") -> None:
    """Refuse the config of another model family (``config_dict["model_type"]`` set and not ``model_type``) with a
    ValueError naming the ``family`` expected, instead of an unrelated error from building the model out of another
    family's fields."""
    found = config_dict.get("model_type")
    if found is not None and found != model_type:
        raise ValueError(
            f"expected a {family} config (model_type {model_type!r}), got a {found!r} config; load that "
            f"model with its own class or AutoModel{hint}"
        )


class FamilyCheckedConfig:
    """Mixin of every rep4d config (before ``PreTrainedConfig`` in the bases): ``from_dict`` refuses another model
    family's config with a message naming ``family`` (the name users know: ``4DS``, ``MooG``, ...)."""

    family = ""
    family_hint = ""

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        check_model_type(config_dict, cls.model_type, cls.family, cls.family_hint)
        return super().from_dict(config_dict, **kwargs)
