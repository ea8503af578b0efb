"""result.json from the report's frozen dataclasses (report.py), and back: `to_json` (like
`dataclasses.asdict`, in field order), `from_json` (a JSON dict read into the dataclass again) and
`json_schema` (the JSON Schema of a dataclass, from its type hints).

The dataclasses say everything result.json needs through their fields:

- a field's name is its key; `key` in its metadata renames it (`from`, a Python keyword);
- `optional()`: a key left out when its value is None (or when the field's `omit(obj)` says so); every
  other field is always written, None as null;
- `internal()`: what the report keeps for the page and the output files (the engine's arrays, the
  options), never written;
- values are stored as written: rounded where result.json rounds them (build_report does it once);
  tuples are written as arrays, datetimes as ISO 8601 to the second.

SCHEMA_VERSION is result.json's `schema_version`: raised when a key is removed, renamed or changes
meaning; a new key that a reader may ignore does not raise it.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from datetime import datetime
from typing import Any, Literal

import numpy as np

SCHEMA_VERSION = 1
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def optional(default=None, *, omit=None, doc: str | None = None, key: str | None = None):
    """A field result.json leaves out when it is None, or (`omit`, a function of the object) when
    `omit(obj)` is true."""
    return dataclasses.field(default=default, metadata=_meta(omit=omit or True, doc=doc, key=key))


def named(*, doc: str | None = None, key: str | None = None, default=dataclasses.MISSING):
    """A field always written, with a description for the schema and/or another key than its name."""
    return dataclasses.field(default=default, metadata=_meta(doc=doc, key=key))


def internal(default=None, *, written: str | None = None):
    """A field kept for the page and the output files, never written to result.json. `written`: a
    flag saying whether that key is written (a rule of `optional(omit=...)`); `from_json` sets it to
    whether the key is there."""
    return dataclasses.field(default=default, metadata=_meta(json=False, written=written), compare=False, repr=False)


def _meta(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def json_fields(cls_or_obj) -> list[dataclasses.Field]:
    """The fields result.json writes, in their order."""
    return [f for f in dataclasses.fields(cls_or_obj) if f.metadata.get("json", True)]


def key_of(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _omitted(obj, f: dataclasses.Field, value) -> bool:
    rule = f.metadata.get("omit")
    if rule is None:
        return False
    return value is None if rule is True else bool(rule(obj))


PLAIN = frozenset({str, int, float, bool, type(None)})  # written as they are (exact types: numpy's scalars are not)


@functools.cache
def _plan(cls) -> tuple[tuple[dataclasses.Field, str], ...]:
    """A dataclass's written fields with their keys, found once per class (a frame result has
    thousands of frames, each a dataclass)."""
    return tuple((f, key_of(f)) for f in json_fields(cls))


def to_json(value) -> Any:
    """A dataclass (or a dict, list or tuple of them) as JSON-ready Python values."""
    kind = type(value)
    if kind in PLAIN:
        return value
    if hasattr(kind, "__dataclass_fields__") and not isinstance(value, type):
        out = {}
        for f, key in _plan(kind):
            v = getattr(value, f.name)
            if not _omitted(value, f, v):
                out[key] = v if type(v) in PLAIN else to_json(v)
        return out
    if isinstance(value, dict):
        return {str(k): v if type(v) in PLAIN else to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in PLAIN else to_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, np.generic):
        return value.item()
    return value


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parts(tp) -> tuple[Any, tuple]:
    origin = typing.get_origin(tp)
    return (types.UnionType if origin is typing.Union else origin), typing.get_args(tp)


def from_json(cls, data: dict):
    """The dataclass `cls` read from its JSON (what `to_json` wrote; internal fields stay None)."""
    hints = _hints(cls)
    values = {f.name: f.metadata["written"] in data for f in dataclasses.fields(cls) if "written" in f.metadata}
    for f in json_fields(cls):
        if key_of(f) in data:
            values[f.name] = _read(hints[f.name], data[key_of(f)])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{cls.__name__}: {key_of(f)!r} is missing")
    return cls(**values)


def _read(tp, value):
    if value is None:
        return None
    origin, args = _parts(tp)
    if dataclasses.is_dataclass(tp):
        return from_json(tp, value)
    if origin is types.UnionType:
        for arg in args:
            if arg is not type(None):
                return _read(arg, value)
    if origin is tuple:
        return tuple(_read(args[0], v) for v in value)
    if origin is list:
        return [_read(args[0], v) for v in value]
    if origin is dict:
        return {k: _read(args[1], v) for k, v in value.items()} if args else dict(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    return value


def json_schema(tp, defs: dict[str, dict]) -> dict:
    """The JSON Schema of the type `tp`; each dataclass it reaches is added to `defs` by its name
    and referred to as `#/$defs/<name>`."""
    if tp is Any:
        return {}
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # a placeholder first: a dataclass may refer to itself
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    simple = {type(None): "null", str: "string", bool: "boolean", int: "integer", float: "number"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    origin, args = _parts(tp)
    if origin is Literal:
        kinds = {simple[type(a)] for a in args}
        return {"type": kinds.pop(), "enum": list(args)} if len(kinds) == 1 else {"enum": list(args)}
    if origin is types.UnionType:
        options = [json_schema(a, defs) for a in args]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if origin in (list, tuple):
        return {"type": "array", "items": json_schema(args[0], defs)}
    if origin is dict or tp is dict:
        return {"type": "object", **({"additionalProperties": json_schema(args[1], defs)} if args and args[1] is not Any else {})}
    raise TypeError(f"no JSON Schema for {tp!r}: give the field a JSON type")


def _without_none(tp):
    origin, args = _parts(tp)
    if origin is not types.UnionType or type(None) not in args:
        return tp
    return functools.reduce(operator.or_, [a for a in args if a is not type(None)])


def _object_schema(cls, defs: dict[str, dict]) -> dict:
    hints, properties, required = _hints(cls), {}, []
    for f in json_fields(cls):
        tp = hints[f.name]
        if f.metadata.get("omit") is True:  # left out rather than null: the key, when there, has a value
            tp = _without_none(tp)
        prop = json_schema(tp, defs)
        if doc := f.metadata.get("doc"):
            prop = {"description": doc, **prop}
        properties[key_of(f)] = prop
        if "omit" not in f.metadata:
            required.append(key_of(f))
    doc = (cls.__doc__ or "").strip()
    head = {"description": " ".join(doc.split())} if doc and not doc.startswith(cls.__name__ + "(") else {}
    return {**head, "type": "object", "properties": properties, "required": required, "additionalProperties": False}
