"""The generic loader: frozen dataclasses from TOML files, `--set a.b=c` overrides, TOML out.

A recipe is a tree of frozen dataclasses. `load_config(Recipe, "configs/x.toml", ["a.b=3"])`
reads the file, applies the overrides, converts every value to the annotated type and
raises `ConfigError` (one line, naming the valid keys) on an unknown key or a bad value.
A check in a dataclass' `__post_init__` names the field it is about first
(`"learning_rate must be > 0"`); the loader adds the table it was read from
(`"d_optim.learning_rate must be > 0"`), so the same class can serve several tables.
`to_toml` writes a configuration back, escaped so that `load_config` reads it unchanged.
This module never imports Keras or TensorFlow, so it is cheap to use from the CLI.

Example:

    @dataclasses.dataclass(frozen=True)
    class Optim:
        lr: float = 2e-4
        milestones: tuple[int, ...] = (200_000,)

    @dataclasses.dataclass(frozen=True)
    class Recipe:
        optim: Optim = Optim()

    cfg = load_config(Recipe, overrides=["optim.lr=1e-4"])
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from kerasr.errors import KerasrError

T = TypeVar("T")


class ConfigError(KerasrError):
    """A configuration file, key or value that cannot be used."""


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> T:
    """Builds a `cls` instance from an optional TOML file, `key.path=value` overrides and
    typed values.

    Args:
        cls: a (frozen) dataclass type; nested dataclass fields become TOML tables.
        path: a TOML file; `None` uses the dataclass defaults.
        overrides: strings such as `"train.batch_size=8"`; values are read as TOML literals
            (`8`, `1e-4`, `true`, `[1, 2]`, `"text"`), and anything that is not one is a string.
        values: typed values by dotted key, e.g. `{"data.source": "/photos"}`, applied after
            `overrides` and checked like them (for typed command-line options).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: on a missing or malformed file, an unknown key or a value of the wrong type.
    """
    data = read_toml(path) if path is not None else {}
    for item in overrides:
        apply_override(data, item)
    for key, value in (values or {}).items():
        _set_value(data, key, value)
    return from_dict(cls, data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Reads a TOML file; `ConfigError` if it is missing, unreadable or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Converts a nested mapping to the dataclass `cls`, checking keys and types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{where}] must be a table. Received: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(
            f"unknown config key '{key}'; valid keys{_in(where)}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if not where:
            raise
        raise ConfigError(_qualify(str(e), where, fields)) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config{_in(where)}: {e}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """The inverse of `from_dict`: a plain nested dict (tuples become lists), for TOML/JSON."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def to_toml(config: Any) -> str:
    """Renders a configuration (a dataclass or a nested mapping) as TOML text.

    The one TOML writer of kerasr (run folders' `config.toml`, TensorBoard): strings are
    escaped as the TOML spec requires (quotes, backslashes, control characters), keys that
    are not bare are quoted, and `None` values are left out (the default applies on reading).
    `load_config(type(config), path)` on the written file gives `config` back.
    """
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: tuple[str, ...]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        if path and (scalars or not tables):
            lines.append(f"[{'.'.join(_toml_key(p) for p in path)}]")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items() if v is not None
        )
        if scalars or (path and not tables):
            lines.append("")
        for k, v in tables.items():
            emit(v, (*path, str(k)))

    emit(to_dict(config), ())
    return "\n".join(lines)


def check(condition: bool, message: str) -> None:
    """Raises `ConfigError(message)` unless `condition`; for dataclass `__post_init__` checks.

    Start `message` with the field it is about (`"patch_size must be ..."`, optionally in
    quotes): the loader then writes the full key (`"data.patch_size must be ..."`).
    """
    if not condition:
        raise ConfigError(message)


_LEADING_NAME = re.compile(r"(')?([A-Za-z_][A-Za-z0-9_]*)(?(1)')(?![A-Za-z0-9_.])")


def _qualify(message: str, where: str, fields: Mapping[str, Any]) -> str:
    """Names the table of a `__post_init__` error: `where.field ...` when the message starts
    with one of the fields, else `[where] ...`."""
    match = _LEADING_NAME.match(message)
    if match and match.group(2) in fields:
        quote = match.group(1) or ""
        return f"{quote}{where}.{match.group(2)}{quote}{message[match.end() :]}"
    return f"[{where}] {message}"


def apply_override(data: dict[str, Any], item: str) -> None:
    """Sets `key.path=value` (the value read as a TOML literal, else a string) in `data`."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override must look like section.key=value. Received: {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    _set_value(data, key, value)


def _set_value(data: dict[str, Any], key: str, value: Any) -> None:
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"config key must look like section.key. Received: {key!r}")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{part}' is a value, not a table")
        node = child
    node[leaf] = value


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as e:
                errors.append(str(e))
        # One line naming every accepted form, e.g. "must be true or false or one of 'auto'".
        head, tail = f"'{where}' must be ", f". Received: {value!r}"
        if len(errors) > 1 and all(e.startswith(head) and e.endswith(tail) for e in errors):
            wants = " or ".join(e[len(head) : -len(tail)] for e in errors)
            raise ConfigError(f"{head}{wants}{tail}")
        raise ConfigError(errors[0])
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"'{where}' must be one of {choices}. Received: {value!r}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"'{where}' must be a list. Received: {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"'{where}' must have {len(args)} items. Received: {value!r}")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{where}' must be a table. Received: {value!r}")
        return {
            _convert(args[0], k, where): _convert(args[1], v, _join(where, k))
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{where}' must be true or false. Received: {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"'{where}' must be an integer. Received: {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"'{where}' must be a number. Received: {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"'{where}' must be a string. Received: {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"kerasr.config cannot convert to {tp!r} (at '{where}')")


# TOML basic strings: these have short escapes, other control characters are written \uXXXX
# and the rest of Unicode as it is (the file is UTF-8).
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_SHORT_ESCAPES |= {'"': '\\"', "\\": "\\\\"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            # A lone surrogate, e.g. an undecodable byte of a file name: TOML has no way to
            # write it.
            raise ConfigError(f"{text!r} is not valid Unicode and cannot be written as TOML")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"to_toml cannot write {type(value).__name__} values. Received: {value!r}")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _in(where: str) -> str:
    return f" in [{where}]" if where else ""
