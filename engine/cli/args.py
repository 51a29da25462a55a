"""Flags from config dataclasses: every command's flags are the fields of the dataclasses it runs on.

    spec = CommandConfig(ModelConfig, FormatConfig, BudgetConfig, SamplingConfig, GenerateOptions)
    spec.add_to(parser)                 # one flag per field: --max-thinking-tokens, help from field metadata
    configs = spec.build(args)          # {BudgetConfig: BudgetConfig(...), ...}: flags > --config FILE.yaml > defaults

A field's ``metadata`` carries its ``help``, and optionally ``flag`` (another spelling: ``methods`` is ``--method``),
``choices``, ``metavar``, ``action="append"`` (repeat the flag to build a tuple), ``negate=True`` (a bool that defaults
to True and is switched off by its flag, ``--no-dedup``) and ``positional=True`` (the command's PROMPT arguments).

``--config FILE.yaml`` holds a mapping of field names (``max_thinking_tokens``, ``max-thinking-tokens``, or the flag's
spelling: ``method`` for ``methods``) to values;
flags given on the command line win over the file, the file over the defaults. Unknown keys and values of the wrong
type are refused with the file and key named, before any model loads. A :class:`ConfigError` raised by a dataclass
names its field; ``main`` renders it with the field's flag (see :meth:`CommandConfig.flags`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import types
import typing

import yaml

from engine.errors import ConfigError, TTScaleError


def flag_of(f: dataclasses.Field) -> str:
    """The command-line spelling of a field: its ``flag`` metadata, else ``--`` + the name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _unwrap(tp) -> tuple[object, bool]:
    """(inner type, optional) of ``X | None`` / ``Optional[X]``; other types unchanged."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _kind(tp) -> tuple[str, object, bool]:
    """("scalar" | "tuple", element type, optional) of a field's annotation. Refuses what the CLI cannot express."""
    inner, optional = _unwrap(tp)
    if typing.get_origin(inner) in (tuple, list):
        elem = typing.get_args(inner)[0]
        return "tuple", elem, optional
    if inner in (int, float, str, bool):
        return "scalar", inner, optional
    if typing.get_origin(inner) in (typing.Union, types.UnionType):  # e.g. str | dict: the CLI passes a string
        return "scalar", str, optional
    raise TypeError(f"field type {tp!r} has no command-line form")


class CommandConfig:
    """The dataclasses one command builds from its flags (see the module docstring).

    ``defaults`` overrides dataclass defaults for this command (``search`` samples at T = 0.8); ``skip`` names fields
    the command does not expose, per dataclass (they keep their defaults); ``titles`` are argument-group titles per dataclass.
    Refuses two dataclasses exposing the same field name (one flag could not feed both).
    """

    def __init__(self, *classes, defaults: dict | None = None, skip: dict | None = None, titles: dict | None = None,
                 sections: tuple[str, ...] = ()):
        self.classes, self.defaults = classes, dict(defaults or {})
        self.sections = tuple(sections)  # top-level --config keys that hold a nested mapping (read by sections_of)
        self.skip = {cls: set(names) for cls, names in (skip or {}).items()}
        self.titles = titles or {}
        self.fields: dict[str, tuple[type, dataclasses.Field, tuple]] = {}
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.name in self.skip.get(cls, ()) or not f.init:
                    continue
                if f.name in self.fields:
                    raise TypeError(f"field {f.name} is in both {self.fields[f.name][0].__name__} and {cls.__name__}; skip one")
                self.fields[f.name] = (cls, f, _kind(hints[f.name]))

    def flags(self) -> dict[str, str]:
        """Field name -> flag, for rendering a :class:`ConfigError` the way the user typed it."""
        return {name: ("PROMPT" if f.metadata.get("positional") else flag_of(f)) for name, (_, f, _) in self.fields.items()}

    def _default(self, name: str):
        cls, f, _ = self.fields[name]
        if name in self.defaults:
            return self.defaults[name]
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None

    # ---- parser ------------------------------------------------------------------------------------------------
    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add ``--config`` and one argument per field, grouped by dataclass; ``build`` reads them back."""
        parser.add_argument("--config", default=None, metavar="FILE.yaml",
                            help="read settings from a YAML mapping of field names to values (flags given here win)")
        groups = {}
        for name, (cls, f, (shape, elem, _optional)) in self.fields.items():
            if cls not in groups:
                title = self.titles.get(cls, cls.__name__)
                groups[cls] = parser.add_argument_group(title)
            g = groups[cls]
            text = f.metadata.get("help", "")
            default = self._default(name)
            if default not in (None, False, (), "") and "default" not in text and not f.metadata.get("positional"):
                shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
                text += f" (default {shown})"
            kw = {"dest": name, "help": text.replace("%", "%%"), "default": argparse.SUPPRESS}
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            if f.metadata.get("positional"):
                nargs = f.metadata.get("nargs", "*")
                parser.add_argument(name, nargs=nargs, help=kw["help"], metavar=f.metadata.get("metavar", name.upper()),
                                    **({"default": argparse.SUPPRESS} if nargs == "*" else {}))
                continue
            if elem is bool:
                kw["action"] = "store_false" if f.metadata.get("negate") else "store_true"
            elif shape == "tuple":
                kw["type"] = elem
                kw["metavar"] = f.metadata.get("metavar", "K" if elem is int else "X" if elem is float else "S")
                if f.metadata.get("action") == "append":
                    kw["action"] = "append"
                else:
                    kw["nargs"] = "*"
            else:
                kw["type"] = elem
                kw["metavar"] = f.metadata.get("metavar", "K" if elem is int else "X" if elem is float else "S")
            g.add_argument(flag_of(f), **kw)
        parser.set_defaults(_spec=self)

    # ---- values ------------------------------------------------------------------------------------------------
    def read_file(self, path: str) -> dict:
        """The values of a ``--config`` YAML file, keyed by field name and checked against each field's type.

        Refuses a missing or unparsable file, a file that is not a mapping, unknown keys and values of the wrong type.
        """
        if not os.path.isfile(path):
            raise TTScaleError(f"--config {path}: no such file")
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            what = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TTScaleError(f"--config {path}: not a readable YAML file ({where}{what})") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise TTScaleError(f"--config {path}: the file must be a mapping of settings (key: value), not a {type(data).__name__}")
        aliases = {flag_of(f).lstrip("-").replace("-", "_"): n for n, (_, f, _) in self.fields.items() if not f.metadata.get("negate")}
        out = {}
        for key, value in data.items():
            if key in self.sections:
                continue  # a nested section, for the command itself (sections_of)
            name = str(key).replace("-", "_").lstrip("_")
            name = name if name in self.fields else aliases.get(name, name)
            if name not in self.fields:
                close = difflib.get_close_matches(name, list(self.fields), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                takes = ", ".join(sorted(self.fields)) + (f" and the sections {', '.join(self.sections)}" if self.sections else "")
                raise TTScaleError(f"--config {path}: unknown key {key!r}; {hint}this command takes {takes}")
            out[name] = self._check_value(path, key, name, value)
        return out

    def sections_of(self, args: argparse.Namespace) -> dict:
        """The nested sections (see ``sections``) of the ``--config`` file, as parsed YAML; {} without a file."""
        path = getattr(args, "config", None)
        if not path or not self.sections:
            return {}
        self.read_file(path)  # the same refusals as for the flat keys
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        return {k: v for k, v in data.items() if k in self.sections}

    def _check_value(self, path: str, key, name: str, value):
        _, f, (shape, elem, optional) = self.fields[name]
        where = f"--config {path}: {key}"
        if value is None:
            if optional:
                return None
            raise TTScaleError(f"{where} may not be empty (null); give a value or leave the key out")
        if shape == "tuple":
            items = value if isinstance(value, list) else [value]
            return tuple(self._scalar(where, elem, v) for v in items)
        return self._scalar(where, elem, value)

    @staticmethod
    def _scalar(where: str, elem, v):
        if elem is bool:
            ok = isinstance(v, bool)
        elif elem is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif elem is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            v = float(v) if ok else v
        else:
            ok = isinstance(v, str)
        if not ok:
            want = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[elem]
            raise TTScaleError(f"{where} must be {want}, got {v!r}")
        return v

    def values(self, args: argparse.Namespace) -> dict:
        """Every exposed field's value: the flag if given, else the ``--config`` file's, else the default."""
        file_values = self.read_file(args.config) if getattr(args, "config", None) else {}
        out = {}
        for name in self.fields:
            if hasattr(args, name):
                value = getattr(args, name)
                out[name] = tuple(value) if isinstance(value, list) else value
            elif name in file_values:
                out[name] = file_values[name]
            else:
                out[name] = self._default(name)
        return out

    def build(self, args: argparse.Namespace, only: tuple = ()) -> dict:
        """One instance per dataclass (or per class of ``only``) from :meth:`values`. A dataclass's own refusal
        surfaces as a :class:`ConfigError` naming its field; ``main`` prints it with the flag."""
        values = self.values(args)
        out = {}
        for cls in only or self.classes:
            kw = {f.name: values[f.name] for f in dataclasses.fields(cls)
                  if f.name in values and self.fields[f.name][0] is cls}
            out[cls] = cls(**kw)
        return out


def render_config_error(exc: ConfigError, args: argparse.Namespace | None) -> str:
    """The sentence of a :class:`ConfigError` with fields shown as this command's flags (bare names otherwise)."""
    spec = getattr(args, "_spec", None) if args is not None else None
    return exc.render(spec.flags() if spec is not None else None)
