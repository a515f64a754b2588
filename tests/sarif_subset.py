"""The part of the OASIS SARIF 2.1.0 JSON schema that abiscan's output relies on.

The official schema (sarif-schema-2.1.0.json, OASIS Static Analysis Results
Interchange Format Version 2.1.0, Errata 01) is not shipped by any package
the tests can install offline, so the constraints on every object abiscan
writes are restated here from the standard, with their section numbers. As in
the official schema, objects reject properties the standard does not define
(``additionalProperties: false``), so a misspelled key fails validation; the
properties listed are the standard's own (a subset of them where abiscan
uses few).

GitHub code scanning adds its own requirements (docs.github.com, "SARIF
support for code scanning"); tests/test_sarif.py checks those separately.
"""

from __future__ import annotations

from typing import Any

_LEVEL = {"enum": ["none", "note", "warning", "error"]}  # §3.27.10, §3.58.6


def _obj(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


_PROPERTY_BAG = {"type": "object"}  # §3.8
_MESSAGE = _obj([], {  # §3.11: text or id (anyOf in the official schema)
    "text": {"type": "string"}, "markdown": {"type": "string"}, "id": {"type": "string"},
    "arguments": {"type": "array", "items": {"type": "string"}},
    "properties": _PROPERTY_BAG,
}) | {"anyOf": [{"required": ["text"]}, {"required": ["id"]}]}
_MULTIFORMAT = _obj(["text"], {  # §3.12
    "text": {"type": "string"}, "markdown": {"type": "string"}, "properties": _PROPERTY_BAG,
})
_ARTIFACT_LOCATION = _obj([], {  # §3.4; uri is a URI reference (§3.4.3)
    "uri": {"type": "string", "format": "uri-reference"},
    "uriBaseId": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
    "description": _MESSAGE, "properties": _PROPERTY_BAG,
})
_REGION = _obj([], {  # §3.30
    "startLine": {"type": "integer", "minimum": 1},
    "startColumn": {"type": "integer", "minimum": 1},
    "endLine": {"type": "integer", "minimum": 1},
    "endColumn": {"type": "integer", "minimum": 1},
    "charOffset": {"type": "integer", "minimum": -1},
    "charLength": {"type": "integer", "minimum": 0},
    "byteOffset": {"type": "integer", "minimum": -1},
    "byteLength": {"type": "integer", "minimum": 0},
    "snippet": {"type": "object"}, "message": _MESSAGE,
    "sourceLanguage": {"type": "string"}, "properties": _PROPERTY_BAG,
})
_PHYSICAL_LOCATION = _obj([], {  # §3.29 (artifactLocation or address: anyOf)
    "address": {"type": "object"}, "artifactLocation": _ARTIFACT_LOCATION,
    "region": _REGION, "contextRegion": _REGION, "properties": _PROPERTY_BAG,
}) | {"anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}]}
_LOGICAL_LOCATION = _obj([], {  # §3.33
    "name": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
    "fullyQualifiedName": {"type": "string"}, "decoratedName": {"type": "string"},
    "parentIndex": {"type": "integer", "minimum": -1}, "kind": {"type": "string"},
    "properties": _PROPERTY_BAG,
})
_LOCATION = _obj([], {  # §3.28
    "id": {"type": "integer", "minimum": -1}, "physicalLocation": _PHYSICAL_LOCATION,
    "logicalLocations": {"type": "array", "items": _LOGICAL_LOCATION, "uniqueItems": True},
    "message": _MESSAGE, "annotations": {"type": "array"}, "relationships": {"type": "array"},
    "properties": _PROPERTY_BAG,
})
_REPORTING_CONFIGURATION = _obj([], {  # §3.50
    "enabled": {"type": "boolean"}, "level": _LEVEL,
    "rank": {"type": "number", "minimum": -1, "maximum": 100},
    "parameters": _PROPERTY_BAG, "properties": _PROPERTY_BAG,
})
_REPORTING_DESCRIPTOR = _obj(["id"], {  # §3.49
    "id": {"type": "string"}, "deprecatedIds": {"type": "array"},
    "guid": {"type": "string"}, "name": {"type": "string"},
    "shortDescription": _MULTIFORMAT, "fullDescription": _MULTIFORMAT,
    "messageStrings": {"type": "object"}, "defaultConfiguration": _REPORTING_CONFIGURATION,
    "helpUri": {"type": "string", "format": "uri"}, "help": _MULTIFORMAT,
    "relationships": {"type": "array"}, "properties": _PROPERTY_BAG,
})
_TOOL_COMPONENT = _obj(["name"], {  # §3.19
    "guid": {"type": "string"}, "name": {"type": "string"},
    "organization": {"type": "string"}, "product": {"type": "string"},
    "fullName": {"type": "string"}, "version": {"type": "string"},
    "semanticVersion": {"type": "string"},
    "informationUri": {"type": "string", "format": "uri"},
    "rules": {"type": "array", "items": _REPORTING_DESCRIPTOR, "uniqueItems": True},
    "notifications": {"type": "array", "items": _REPORTING_DESCRIPTOR},
    "language": {"type": "string"}, "properties": _PROPERTY_BAG,
})
_NOTIFICATION = _obj(["message"], {  # §3.58
    "locations": {"type": "array", "items": _LOCATION}, "message": _MESSAGE,
    "level": _LEVEL, "threadId": {"type": "integer"},
    "timeUtc": {"type": "string"}, "exception": {"type": "object"},
    "descriptor": _obj([], {  # §3.52 reportingDescriptorReference
        "id": {"type": "string"}, "index": {"type": "integer", "minimum": -1},
        "guid": {"type": "string"}, "toolComponent": {"type": "object"},
        "properties": _PROPERTY_BAG,
    }),
    "associatedRule": {"type": "object"}, "properties": _PROPERTY_BAG,
})
_INVOCATION = _obj(["executionSuccessful"], {  # §3.20
    "commandLine": {"type": "string"}, "arguments": {"type": "array"},
    "executionSuccessful": {"type": "boolean"}, "exitCode": {"type": "integer"},
    "toolExecutionNotifications": {"type": "array", "items": _NOTIFICATION},
    "toolConfigurationNotifications": {"type": "array", "items": _NOTIFICATION},
    "properties": _PROPERTY_BAG,
})
_RESULT = _obj(["message"], {  # §3.27
    "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
    "rule": {"type": "object"}, "kind": {"enum": ["notApplicable", "pass", "fail", "review",
                                                 "open", "informational"]},
    "level": _LEVEL, "message": _MESSAGE, "analysisTarget": _ARTIFACT_LOCATION,
    "locations": {"type": "array", "items": _LOCATION},
    "guid": {"type": "string"}, "correlationGuid": {"type": "string"},
    "occurrenceCount": {"type": "integer", "minimum": 1},
    "partialFingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
    "fingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
    "relatedLocations": {"type": "array", "items": _LOCATION},
    "suppressions": {"type": "array"}, "baselineState": {"type": "string"},
    "rank": {"type": "number"}, "properties": _PROPERTY_BAG,
})
_RUN = _obj(["tool"], {  # §3.14
    "tool": _obj(["driver"], {"driver": _TOOL_COMPONENT,  # §3.18
                              "extensions": {"type": "array"}, "properties": _PROPERTY_BAG}),
    "invocations": {"type": "array", "items": _INVOCATION},
    "automationDetails": _obj([], {  # §3.17 runAutomationDetails
        "description": _MESSAGE, "id": {"type": "string"}, "guid": {"type": "string"},
        "correlationGuid": {"type": "string"}, "properties": _PROPERTY_BAG,
    }),
    "originalUriBaseIds": {"type": "object"}, "artifacts": {"type": "array"},
    "results": {"type": "array", "items": _RESULT},
    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
    "properties": _PROPERTY_BAG,
})
SARIF_2_1_0_SUBSET: dict[str, Any] = {  # §3.13 sarifLog
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_obj(["version", "runs"], {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"enum": ["2.1.0"]},
        "runs": {"type": ["array", "null"], "items": _RUN},
        "inlineExternalProperties": {"type": "array"},
        "properties": _PROPERTY_BAG,
    }),
}
