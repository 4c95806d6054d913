"""hack/check_manifests.py's conversion of the API server's OpenAPI v3 schemas into strict JSON schemas (pure)."""

from __future__ import annotations

from typing import Any

from check_manifests import convert, file_name, standalone

REF = "#/components/schemas/"


def test_objects_with_properties_reject_unknown_fields_unless_kubernetes_preserves_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
            "free": {"type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    out = convert(schema, set())
    assert out["additionalProperties"] is False
    assert out["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["labels"]["additionalProperties"] == {"type": "string"}  # a map stays a map


def test_a_property_named_like_a_keyword_is_a_property() -> None:
    # JSONSchemaProps (a CRD's schema) has properties called "properties" and "additionalProperties"
    schema = {"type": "object", "properties": {"properties": {"type": "object"}, "additionalProperties": {}}}
    out = convert(schema, set())
    assert set(out["properties"]) == {"properties", "additionalProperties"}
    assert out["properties"]["properties"] == {"type": "object"}


def test_nullable_allows_null_and_references_point_into_the_file() -> None:
    refs: set[str] = set()
    out = convert({"type": "string", "nullable": True, "allOf": [{"$ref": REF + "x.Y"}]}, refs)
    assert out["type"] == ["string", "null"]
    assert out["allOf"] == [{"$ref": "#/definitions/x.Y"}]
    assert refs == {"x.Y"}


def test_standalone_carries_every_reachable_definition_once_even_recursive_ones() -> None:
    schemas: dict[str, Any] = {
        "Kind": {"type": "object", "properties": {"spec": {"$ref": REF + "Spec"}}},
        "Spec": {"type": "object", "properties": {"child": {"$ref": REF + "Spec"}, "m": {"$ref": REF + "Meta"}}},
        "Meta": {"type": "object", "properties": {"name": {"type": "string"}}},
        "Unused": {"type": "string"},
    }
    out = standalone("Kind", schemas)
    assert out["$schema"] == "http://json-schema.org/draft-04/schema#"  # OpenAPI 3.0's boolean exclusiveMinimum
    assert set(out["definitions"]) == {"Spec", "Meta"}
    assert out["definitions"]["Spec"]["properties"]["child"] == {"$ref": "#/definitions/Spec"}


def test_file_names_are_kubeconforms() -> None:
    assert file_name("", "v1", "Service") == "service-v1.json"
    assert file_name("apps", "v1", "Deployment") == "deployment-apps-v1.json"
    assert file_name("modelyard.dev", "v1alpha1", "ModelVersion") == "modelversion-modelyard-v1alpha1.json"
    assert (
        file_name("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy")
        == "validatingadmissionpolicy-admissionregistration-v1.json"
    )
