"""Typed parameters: frozen dataclasses that own each study's defaults, the papers' values and the reasons.

Every notebook's parameters are one :class:`Params` subclass (``spinelib.params.<study>``), nested where its
YAML nests. A field is declared with :func:`param`, which keeps beside the default (the CPU profile of
``params/*.yaml``) the paper's value and, where the two differ, why::

    epochs: int = param(3, paper=14, why="CPU: 14 epochs do not fit the 2-core budget")

``params/*.yaml`` (default profile) and ``params/paper/*.yaml`` (paper profile) are overrides of those
defaults, loaded strictly: an unknown key fails with its file, its dotted path and the nearest known name
before any work starts (:meth:`Params.load`). The tests check that the default profile equals the class
defaults and the paper profile equals the fields' ``paper`` values, so the three never drift apart.

The notebook tests run each notebook on its *tiny* profile (:meth:`Params.tiny`): the class's ``TINY``
overrides, small enough that a notebook runs in seconds on a tiny phantom.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

P = TypeVar("P", bound="Params")


class ParamsError(ValueError):
    """A parameter file or mapping that does not fit its class (unknown, missing or mistyped keys)."""


class _Same:
    """Marker of a field whose paper value is its default (or that the paper does not state)."""

    def __repr__(self) -> str:
        return "SAME"


SAME = _Same()


def param(default: Any, *, paper: Any = SAME, why: str = "") -> Any:
    """A dataclass field with its default, the paper's value (``SAME``: as the default) and the reason.

    Mutable defaults (lists, dicts) are copied for each instance, so no two instances share one.
    """
    metadata = {"paper": paper, "why": why}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    if isinstance(default, type) and issubclass(default, Params):  # a nested section: its own defaults
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every study's parameters (see the module docstring)."""

    TINY: ClassVar[dict[str, Any]] = {}   # overrides of the tiny profile, nested like the YAML

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any], where: str = "") -> P:
        """Build from a complete mapping: every field present, no other key, each value of its field's type.

        ``where`` prefixes the dotted path in error messages (a file name, a section).
        """
        if not isinstance(values, Mapping):
            raise ParamsError(f"{where or cls.__name__}: expected a mapping of parameters, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        _reject_unknown(values, fields, where)
        missing = sorted(set(fields) - set(values))
        if missing:
            raise ParamsError(f"{where or cls.__name__}: missing parameter(s) {', '.join(_dotted(where, m) for m in missing)}")
        hints = typing.get_type_hints(cls)
        built = {}
        for name in fields:
            path = _dotted(where, name)
            built[name] = _convert(values[name], hints[name], path)
        return cls(**built)

    @classmethod
    def load(cls: type[P], *files: str | Path, overrides: Mapping[str, Any] | None = None) -> P:
        """The class defaults, then each YAML file in order, then ``overrides``: each may set any subset of keys.

        Files that hold keys of other notebooks (``params/data.yaml`` is shared) may pass them only where the class
        declares them; anything else is an unknown key and fails here, naming the file.
        """
        merged = cls()._tree()
        for file in files:
            text = Path(file).read_text()
            loaded = yaml.safe_load(text) or {}
            merged = _merge(merged, loaded, str(file))
        if overrides:
            merged = _merge(merged, overrides, "overrides")
        return cls.from_dict(merged, where=cls.__name__)

    @classmethod
    def tiny(cls: type[P], **overrides: Any) -> P:
        """The tiny profile (class defaults with ``TINY`` applied), then ``overrides``."""
        merged = _merge(cls()._tree(), cls.TINY, f"{cls.__name__}.TINY")
        return cls.from_dict(_merge(merged, overrides, "overrides"), where=cls.__name__)

    @classmethod
    def for_notebook(cls: type[P], params_files: list[str] | tuple[str, ...]) -> P:
        """What a notebook's parameters cell turns into: the profile files papermill passed, loaded strictly
        (:meth:`load`); none (the notebook run as it is, as the notebook tests do): the tiny profile."""
        return cls.load(*params_files) if params_files else cls.tiny()

    @classmethod
    def paper(cls: type[P]) -> P:
        """The paper profile as the fields declare it (each field's ``paper`` value, else its default)."""
        return cls.from_dict(_paper_values(cls), where=f"{cls.__name__} (paper)")

    def replace(self: P, **changes: Any) -> P:
        """A copy with ``changes`` (top-level fields; nested sections as mappings or instances), checked."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        _reject_unknown(changes, fields, type(self).__name__)
        merged = _merge(self._tree(), {k: v.to_dict() if isinstance(v, Params) else v for k, v in changes.items()},
                        "replace")
        return type(self).from_dict(merged, where=type(self).__name__)

    # ---- views --------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), as the YAML holds it."""
        return _untag(self._tree())

    def _tree(self) -> _Section:
        """Like :meth:`to_dict`, with nested sections tagged so that merging goes into them key by key."""
        return _Section({f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def rows(self, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
        """(dotted name, value, paper value, why) for every leaf field, nested sections flattened."""
        found = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Params):
                found += value.rows(f"{prefix}{f.name}.")
            else:
                paper = f.metadata.get("paper", SAME)
                found.append((f"{prefix}{f.name}", _plain(value), _plain(paper), f.metadata.get("why", "")))
        return found

    def _repr_markdown_(self) -> str:
        """The notebook's view: one row per parameter, the paper's value where it differs, and why."""
        lines = [f"**{type(self).__name__}**", "", "| parameter | value | paper | why |", "|---|---|---|---|"]
        for name, value, paper, why in self.rows():
            shown = "" if paper is SAME else f"`{paper}`"
            lines.append(f"| `{name}` | `{value}` | {shown} | {why} |")
        return "\n".join(lines)


# ---- helpers ------------------------------------------------------------------------------------------------------

def _dotted(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _reject_unknown(values: Mapping[str, Any], fields: Mapping[str, Any], where: str) -> None:
    """Raise on keys that are not fields, each with the nearest field name as a hint."""
    unknown = [k for k in values if k not in fields]
    if not unknown:
        return
    parts = []
    for key in unknown:
        near = difflib.get_close_matches(str(key), list(fields), n=1)
        parts.append(_dotted(where, str(key)) + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise ParamsError(f"unknown parameter(s): {', '.join(parts)}; known: {', '.join(fields)}")


def _merge(base: dict[str, Any], update: Mapping[str, Any], source: str, path: str = "") -> dict[str, Any]:
    """``base`` with ``update`` applied key by key; nested mappings of sections merge, other values replace.

    A key of ``update`` that ``base`` lacks is unknown, except inside a mapping-valued field (a dict of
    per-condition or per-kind values), which is replaced whole.
    """
    if not isinstance(update, Mapping):
        raise ParamsError(f"{source}: {path or 'top level'} must be a mapping, got {type(update).__name__}")
    merged = dict(base)
    for key, value in update.items():
        dotted = _dotted(path, str(key))
        if key not in base:
            near = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ParamsError(f"{source}: unknown parameter {dotted}{hint}")
        if isinstance(base[key], dict) and isinstance(value, Mapping) and _is_section(base[key]):
            merged[key] = _merge(base[key], value, source, dotted)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_section(value: dict[str, Any]) -> bool:
    """Whether a plain dict came from a nested :class:`Params` (tagged by :func:`_plain`)."""
    return isinstance(value, _Section)


class _Section(dict):
    """A nested section's plain dict; merging goes key by key into it (data dicts are replaced whole)."""


def _plain(value: Any) -> Any:
    if isinstance(value, Params):
        return value._tree()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _paper_values(cls: type[Params]) -> dict[str, Any]:
    values = {}
    defaults = cls()
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name)
        if isinstance(default, Params):
            values[f.name] = _paper_values(type(default))
        else:
            paper = f.metadata.get("paper", SAME)
            values[f.name] = _plain(default) if paper is SAME else copy.deepcopy(paper)
    return values


def _convert(value: Any, hint: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``hint`` (build nested sections); ints pass as floats."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Params):
        return hint.from_dict(value, where=path)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except ParamsError as error:
                errors.append(str(error))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{path}: {value!r} fits none of {hint}")
    if hint is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{path}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{path}: expected a mapping, got {value!r}")
        key_type, item = typing.get_args(hint) or (Any, Any)
        return {k: _convert(v, item, f"{path}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{path}: expected a number, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ParamsError(f"{path}: expected {hint.__name__}, got {value!r}")
        return value
    if hint is list or hint is dict:
        if not isinstance(value, hint):
            raise ParamsError(f"{path}: expected {hint.__name__}, got {value!r}")
        return copy.deepcopy(value)
    return value
