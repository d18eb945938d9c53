"""Safe YAML 1.2 text for :mod:`sagasim.io`: plain data plus the line of every path, and back.

Nothing here knows about sagas. Reading composes PyYAML's node tree with a ``SafeLoader``
subclass, so each node keeps its line, then builds plain data (dicts, lists, str, int, float,
bool, None) and a map from path (``steps[2].retry.attempts``) to line. Scalars follow YAML 1.2:
only ``true``/``false`` are booleans, so ``yes``, ``no``, ``on`` and ``off`` stay strings, and
``1e-3`` is a number. Refused, each with a :class:`SagaDefinitionError` naming file and line:
text that is not UTF-8 or not printable, more than :data:`MAX_BYTES`, duplicate keys, tags other
than the plain ones (``!!python/object`` ...), more than :data:`MAX_ALIASES` aliases, recursive
aliases and alias expansion past :data:`MAX_NODES` nodes ("billion laughs").

Examples
--------
>>> data, lines = parse("saga: s\\nsteps:\\n  - name: on\\n    effects: no\\n", "m.yaml")
>>> data["steps"], lines["steps[0].effects"]
([{'name': 'on', 'effects': 'no'}], 4)
>>> print(dump({"name": "on", "p": 0.5}), end="")
{name: 'on', p: 0.5}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from ..exceptions import SagaDefinitionError

#: Largest model accepted, in bytes (1 MB).
MAX_BYTES = 1 << 20
#: Most aliases (``*name``) a document may contain.
MAX_ALIASES = 100
#: Most nodes a document may have once its aliases are expanded (a 1 MB file holds fewer).
MAX_NODES = 1_000_000

_TAG = "tag:yaml.org,2002:"


class _Loader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 scalars that counts the aliases it composes."""

    def __init__(self, text: str, file: str | None) -> None:
        super().__init__(text)
        self.file, self.aliases = file, 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                line = self.peek_event().start_mark.line + 1
                message = f"expected at most {MAX_ALIASES} aliases, got more"
                raise SagaDefinitionError(message, file=self.file, line=line)
        return super().compose_node(parent, index)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 or 1.2 would read as something else (``yes``, ``1e3``)."""


#: Line breaks beyond \n that a plain or block scalar would fold away on reading back.
_UNUSUAL_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if any(c in text for c in _UNUSUAL_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", "-+.0123456789"),
    ("float", r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+."),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
):
    _regexp = re.compile(f"^(?:{_pattern})$")
    _Loader.add_implicit_resolver(_TAG + _tag, _regexp, list(_first))
    _Dumper.add_implicit_resolver(_TAG + _tag, _regexp, list(_first))


def join(path: str, key: object) -> str:
    """The path of ``key`` inside the mapping at ``path``."""
    return f"{path}.{key}" if path else str(key)


def split(path: str) -> list[str]:
    """The components of a path: ``steps[2].retry`` -> ``['steps', '[2]', 'retry']``."""
    return re.findall(r"[^.\[]+|\[[^\]]*\]?", path)


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of ``path`` in a line map, or of its nearest parent that has one."""
    while path not in lines:
        if not path:
            return None
        path = path[: max(path.rfind("."), path.rfind("["), 0)]
    return lines[path]


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a model file: UTF-8 (a BOM is dropped), at most :data:`MAX_BYTES`."""
    file = os.fsdecode(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as err:
        message = f"expected a readable file, got {err.strerror or err}"
        raise SagaDefinitionError(message, file=file) from None
    if len(raw) > MAX_BYTES:
        raise SagaDefinitionError(f"expected at most {MAX_BYTES} bytes, got more", file=file)
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        message = f"expected UTF-8 text, got the byte 0x{raw[err.start]:02x}"
        raise SagaDefinitionError(message, file=file, line=line) from None


def _compose(text: str, file: str | None) -> yaml.Node | None:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SagaDefinitionError(f"expected at most {MAX_BYTES} bytes, got more", file=file)
    loader = None
    try:
        loader = _Loader(text, file)  # the reader checks the characters here already
        return loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = ", ".join(part for part in (err.context, err.problem) if part)
        if mark is None:
            raise SagaDefinitionError(f"expected valid YAML, got {problem}", file=file) from None
        message = f"expected valid YAML, got a syntax error at column {mark.column + 1}: {problem}"
        raise SagaDefinitionError(message, file=file, line=mark.line + 1) from None
    except yaml.reader.ReaderError as err:
        message = f"expected printable text, got the character {chr(err.character)!r}"
        line = text[: err.position].count("\n") + 1
        raise SagaDefinitionError(message, file=file, line=line) from None
    except RecursionError:
        depth = None if loader is None else loader.line + 1  # where the reader had got to
        message = "expected a model nested less deeply"
        raise SagaDefinitionError(message, file=file, line=depth) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse(text: str, file: str | None = "<string>") -> tuple[Any, dict[str, int]]:
    """Plain data from YAML text, and a map from each path in it to its line.

    A mapping entry's line is its key's; a list item's is where the item starts.
    """
    root = _compose(text, file)
    if root is None:
        return None, {"": 1}
    size = _expanded_size(root, {}, set(), file)
    if size > MAX_NODES:
        message = f"expected at most {MAX_NODES} nodes once aliases are expanded, got {size}"
        raise SagaDefinitionError(message, file=file, line=root.start_mark.line + 1)
    lines: dict[str, int] = {}
    return _to_data(root, "", lines, file), lines


def scalar(text: str) -> Any:
    """One YAML scalar read with the same rules as a file (``"yes"`` -> ``'yes'``)."""
    try:
        node = _compose(text, None)
    except SagaDefinitionError:
        raise SagaDefinitionError(f"expected a YAML value, got {text.strip()!r}") from None
    if node is not None and not isinstance(node, yaml.ScalarNode):
        kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        raise SagaDefinitionError(f"expected a single value, got {kind}")
    return None if node is None else _scalar(node, "", None)


def dump(data: Any) -> str:
    """YAML text for plain data, leaf collections in flow style, keys in their order."""
    options: dict[str, Any] = {"sort_keys": False, "default_flow_style": None, "width": 100}
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, **options)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], seen: set[int], file: str | None) -> int:
    """How many nodes the document has with every alias expanded; refuses recursive aliases."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in seen:
        message = "expected aliases to complete nodes, got an alias inside its own anchor"
        raise SagaDefinitionError(message, file=file, line=node.start_mark.line + 1)
    seen.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, seen, file) for child in children)
    return sizes[id(node)]


def _to_data(node: yaml.Node, path: str, lines: dict[str, int], file: str | None) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, path, file)
    if node.tag != _TAG + ("seq" if isinstance(node, yaml.SequenceNode) else "map"):
        raise SagaDefinitionError(_tag_message(node.tag), path=path, file=file, line=lines[path])
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, f"{path}[{i}]", lines, file) for i, item in enumerate(node.value)]
    result: dict[Any, Any] = {}
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "a mapping" if isinstance(key_node, yaml.MappingNode) else "a list"
            message = f"expected a plain key, got {kind}"
            raise SagaDefinitionError(message, path=path, file=file, line=line)
        key = _scalar(key_node, path, file)
        if key in first_line:
            message = f"expected each key once, got {key!r} again (first on line {first_line[key]})"
            raise SagaDefinitionError(message, path=path, file=file, line=line)
        first_line[key] = lines.setdefault(join(path, key), line)
        result[key] = _to_data(value_node, join(path, key), lines, file)
    return result


def _scalar(node: yaml.Node, path: str, file: str | None) -> Any:
    tag, text = node.tag.removeprefix(_TAG), node.value
    try:
        if tag in ("str", "null"):
            return text if tag == "str" else None
        if tag == "bool" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if tag in ("int", "float"):
            special = text.lower().replace(".inf", "inf").replace(".nan", "nan")
            return int(text) if tag == "int" else float(special)
    except ValueError:
        pass
    kinds = {"bool": "true or false", "int": "an integer", "float": "a number"}
    shown = text if len(text) <= 60 else text[:57] + "..."
    message = f"expected {kinds[tag]}, got {shown!r}" if tag in kinds else _tag_message(node.tag)
    raise SagaDefinitionError(message, path=path, file=file, line=node.start_mark.line + 1)


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    return f"expected plain YAML data, got the tag {shown!r}"
