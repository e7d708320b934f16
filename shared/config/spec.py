"""Runtime base of the generated typed spec classes (see tools/gen_types.py).

Each generated class lists its fields once in `_FIELDS` as
`(json_name, attribute, shape, element)` where shape is `s` scalar, `o` object,
`l` list, `m` map, `a` any JSON; `element` is the nested class or None. Conversion
assumes the document already passed structural validation (as Istio's webhook only
sees objects the API server's schema admitted).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Mapping

EMPTY_MAP: Mapping[str, Any] = MappingProxyType({})


def _load(shape: str, elem: type["Spec"] | None, value: Any) -> Any:
    if value is None:
        # An explicit null list/map reads as empty, as proto3 JSON decoding does.
        return () if shape == "l" else EMPTY_MAP if shape == "m" else None
    if shape == "o":
        return elem.from_dict(value) if elem is not None and isinstance(value, Mapping) else value
    if shape == "l":
        items = value if isinstance(value, list | tuple) else ()
        if elem is None:
            return tuple(items)
        return tuple(elem.from_dict(v) if isinstance(v, Mapping) else v for v in items)
    if shape == "m":
        m = value if isinstance(value, Mapping) else {}
        if elem is None:
            return MappingProxyType(dict(m))
        return MappingProxyType({k: elem.from_dict(v) if isinstance(v, Mapping) else v for k, v in m.items()})
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


class Spec:
    """A frozen view of one object in an Istio spec; attributes are snake_case."""

    _FIELDS: ClassVar[tuple[tuple[str, str, str, Any], ...]] = ()
    __slots__ = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Spec":
        kwargs = {}
        for json_name, attr, shape, elem in cls._FIELDS:
            if json_name in data:
                kwargs[attr] = _load(shape, elem, data[json_name])
        return cls(**kwargs)  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for json_name, attr, shape, _ in self._FIELDS:
            value = getattr(self, attr)
            if value is None or (shape in "lm" and not value):
                continue
            out[json_name] = _dump(value)
        return out

    def has(self, attr: str) -> bool:
        """True when the field was set (lists and maps: non-empty)."""
        value = getattr(self, attr)
        return value is not None and not (isinstance(value, tuple | Mapping) and not value)


def empty_map() -> Mapping[str, Any]:
    return EMPTY_MAP
