"""Read Istio YAML/JSON the way kubectl does: multi-document streams, `kind: List`.

Pure over text; `read_paths` is the one helper that touches the filesystem (for the
CLI's `-f FILE|DIR|-`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from isthmus.shared.errors import InvalidConfig


@dataclass(frozen=True)
class Document:
    source: str  # "file.yaml#2" — where a message should point the user
    body: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader as kubectl reads YAML: everything becomes JSON, so timestamps stay
    strings (sigs.k8s.io/yaml converts YAML to JSON before decoding)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_text(text: str, source: str = "-") -> list[Document]:
    """Every document in a YAML/JSON stream, `kind: List` items expanded; empty ones skipped."""
    docs: list[Document] = []
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidConfig([f"{where}: YAML syntax error: {problem}"]) from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise many types
        # Explicitly tagged values that do not construct (`!!bool maybe`, `!!float`, deep nesting).
        raise InvalidConfig([f"{source}: YAML value error: {type(exc).__name__}: {exc}"]) from None
    for i, body in enumerate(raw):
        if body is None:
            continue
        label = f"{source}#{i + 1}" if len(raw) > 1 else source
        if isinstance(body, dict) and body.get("kind") == "List" and str(body.get("apiVersion", "")) == "v1":
            items = body.get("items") or []
            if not isinstance(items, list):
                raise InvalidConfig([f"{label}: items: must be a list (got {type(items).__name__})"])
            docs.extend(Document(f"{label} items[{j}]", item) for j, item in enumerate(items))
        else:
            docs.append(Document(label, body))
    return docs


def _files(path: Path) -> Iterable[Path]:
    if path.is_dir():
        for p in sorted(path.iterdir()):
            if p.is_file() and p.suffix in (".yaml", ".yml", ".json"):
                yield p
    else:
        yield path


def read_paths(paths: Iterable[str]) -> list[Document]:
    """Documents from files, directories (their .yaml/.yml/.json files) or `-` (stdin)."""
    docs: list[Document] = []
    for p in paths:
        if p == "-":
            docs.extend(parse_text(sys.stdin.read(), "<stdin>"))
            continue
        path = Path(p)
        if not path.exists():
            raise InvalidConfig([f"{p}: no such file or directory"])
        for f in _files(path):
            docs.extend(parse_text(f.read_text(), str(f)))
    return docs
