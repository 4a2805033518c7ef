"""Typed sections from YAML: a frozen dataclass built from a plain mapping, every key's type
checked, every mistake one ConfigError line naming the dotted key. Knows no section of its own:
the run config (pipeline.config.run_config), `compare:` (pipeline.compare) and `tune:` (tune.space) are built
with it."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Union

import yaml

from pipeline.errors import ConfigError, first_line


def read_yaml(path: str | Path | None) -> dict[str, Any]:
    """A config file's mapping ({} for no file), or a one-line ConfigError."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML ({first_line(exc)}): fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, not {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """`--set a.b=c` items into raw; the value is read as YAML (3 is an int, [1, 2] a list)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not key=value: write e.g. --set schedule.rounds=3")
        set_path(raw, key.strip(), yaml.safe_load(text) if text.strip() else None)


def set_path(raw: dict, dotted: str, value: Any) -> None:
    """raw["a"]["b"]["c"] = value for dotted "a.b.c", creating sections; a ConfigError if "a.b" is a value."""
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is a value, not a section")
        node = child
    node[leaf] = value


def build_section(cls, raw: Any, name: str, replaced: dict[str, str] | None = None):
    """cls from a mapping whose keys sit under `name.` (name "" for the top level). `replaced` maps
    the dotted keys of earlier versions to what to write instead."""
    return _build(cls, raw, f"{name}." if name else "", replaced or {})


def _build(cls, raw: Any, prefix: str, replaced: dict[str, str]):
    if not isinstance(raw, dict):
        raise ConfigError(f"'{prefix.rstrip('.')}' must be a section of keys, not {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown and prefix + unknown[0] in replaced:
        raise ConfigError(f"config key '{prefix}{unknown[0]}' is gone: {replaced[prefix + unknown[0]]}")
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}': valid keys here are {', '.join(names)}")
    values = {name: _convert(hints[name], raw[name], prefix + name, replaced) for name in names if name in raw}
    return cls(**values)


def _convert(hint, value, key: str, replaced: dict[str, str]):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", replaced)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, key, replaced)
            except ConfigError:
                continue
        raise ConfigError(f"'{key}' = {value!r} has the wrong type: expected {_describe(hint)}")
    if origin is tuple:
        # a list of sections (stopping) may be empty: none; a list of values (round_ends) may not
        if not isinstance(value, (list, tuple)) or not (value or dataclasses.is_dataclass(args[0])):
            raise ConfigError(f"'{key}' must be a non-empty list, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]", replaced) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping of names to values, e.g. {{name: 1}}, got {value!r}")
        return {
            _convert(args[0], k, f"{key} name {k!r}", replaced): _convert(args[1], v, f"{key}.{k}", replaced)
            for k, v in value.items()
        }
    return _scalar(hint, value, key)


def _scalar(hint, value, key: str):
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"'{key}' = {value!r} has the wrong type: expected {_describe(hint)}")


def _describe(hint) -> str:
    args = typing.get_args(hint)
    if args:
        return " or ".join(_describe(a) for a in args if a is not type(None))
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
