"""Validate JSON outputs against the schemas abiscan ships (abiscan/report/schemas)."""

from __future__ import annotations

from typing import Any

import jsonschema
from referencing import Registry, Resource

from abiscan.report.json_schema import SchemaName, all_schemas, schema

_SCHEMAS = all_schemas()
_REGISTRY: Registry = Registry().with_resources(
    (uri, Resource.from_contents(doc)) for uri, doc in _SCHEMAS.items()
)


def validate_output(name: SchemaName, data: Any) -> None:
    """Valid against the schema, and no key the schema does not document."""
    jsonschema.Draft7Validator(schema(name), registry=_REGISTRY).validate(data)
    extra = undocumented(data, schema(name), schema(name))
    assert not extra, f"{name}: keys the schema does not document: {extra}"


def _resolve(node: dict[str, Any], doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    while "$ref" in node:
        uri, _, pointer = node["$ref"].partition("#")
        if uri:
            doc = _SCHEMAS[uri]
        node = doc
        for part in pointer.strip("/").split("/") if pointer else ():
            node = node[part]
    return node, doc


def undocumented(data: Any, node: dict[str, Any], doc: dict[str, Any], at: str = "") -> list[str]:
    node, doc = _resolve(node, doc)
    for branch in node.get("oneOf", ()):
        b, bdoc = _resolve(branch, doc)
        if data is not None and b.get("type") != "null":
            return undocumented(data, b, bdoc, at)
    out: list[str] = []
    if isinstance(data, dict) and "properties" in node and node["properties"]:
        for key, value in data.items():
            sub = node["properties"].get(key)
            if sub is None:
                out.append(f"{at}/{key}")
            else:
                out.extend(undocumented(value, sub, doc, f"{at}/{key}"))
    elif isinstance(data, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(data):
            out.extend(undocumented(item, node["items"], doc, f"{at}/{i}"))
    return out
