//! `jsonSchema` to GBNF, through llama.cpp's own converter, with the schema's `type` names
//! checked first so that a mistake is reported with its place in the schema.

use crate::engine::error::{EngineError, EngineResult};

pub fn to_gbnf(schema: &str) -> EngineResult<String> {
    let value = serde_json::from_str::<serde_json::Value>(schema)
        .map_err(|e| EngineError::invalid_argument(format!("jsonSchema is not valid JSON: {e}")))?;
    check_schema_types(&value, "")?;
    llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| {
        EngineError::invalid_argument(format!(
            "jsonSchema cannot be turned into a grammar ({e}): llama.cpp's converter supports \
             type, properties, required, additionalProperties, items, prefixItems, enum, const, \
             anyOf/oneOf/allOf, local $ref, pattern, format, min/max length and items"
        ))
    })
}

/// llama.cpp's converter fails with only an error number on an unknown `type`: name the
/// place instead (a JSON pointer). Walks only the keywords whose values are schemas.
fn check_schema_types(schema: &serde_json::Value, at: &str) -> EngineResult<()> {
    use serde_json::Value;
    const TYPES: [&str; 7] = [
        "object", "array", "string", "number", "integer", "boolean", "null",
    ];
    let Value::Object(map) = schema else {
        return Ok(()); // `true`/`false` schemas, or something the converter will judge
    };
    let here = if at.is_empty() { "#" } else { at };
    if let Some(t) = map.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        for name in names {
            if !name.as_str().is_some_and(|n| TYPES.contains(&n)) {
                return Err(EngineError::invalid_argument(format!(
                    "jsonSchema {here}/type is {name}: it must be one of {}",
                    TYPES.join(", ")
                )));
            }
        }
    }
    let pointer = |parts: &[&str]| {
        let escaped: Vec<String> = parts
            .iter()
            .map(|p| p.replace('~', "~0").replace('/', "~1"))
            .collect();
        format!("{here}/{}", escaped.join("/"))
    };
    for (key, child) in map {
        match (key.as_str(), child) {
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                Value::Object(named),
            ) => {
                for (name, sub) in named {
                    check_schema_types(sub, &pointer(&[key, name]))?;
                }
            }
            ("anyOf" | "oneOf" | "allOf" | "prefixItems" | "items", Value::Array(list)) => {
                for (i, sub) in list.iter().enumerate() {
                    check_schema_types(sub, &pointer(&[key, &i.to_string()]))?;
                }
            }
            (
                "items"
                | "additionalProperties"
                | "additionalItems"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else",
                sub,
            ) => {
                check_schema_types(sub, &pointer(&[key]))?;
            }
            _ => {}
        }
    }
    Ok(())
}
