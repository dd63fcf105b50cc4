//! Grammars that constrain sampling: GBNF text from `grammar`, or converted from `jsonSchema`.
//! Checked on the caller's thread at submit (`gbnf`, `json_schema`) for what llama.cpp's own
//! parser cannot survive, and on the prompt thread (`token_refs`) against the vocabulary.

pub mod gbnf;
mod json_schema;
mod token_refs;

pub use gbnf::TokenUse;
pub use token_refs::check_token_refs;

use super::error::{EngineError, EngineResult};

/// A request's grammar as GBNF, with its `<token>` references, from the `grammar` or
/// `jsonSchema` option (at most one of them).
pub fn from_options(
    grammar: Option<&str>,
    json_schema: Option<&str>,
) -> EngineResult<(Option<String>, Vec<TokenUse>)> {
    match (grammar, json_schema) {
        (Some(_), Some(_)) => Err(EngineError::invalid_argument(
            "pass either grammar or jsonSchema, not both",
        )),
        (Some(g), None) if g.trim().is_empty() => {
            Err(EngineError::invalid_argument("grammar is empty"))
        }
        (Some(g), None) => {
            let tokens = gbnf::check(g, "root").map_err(|e| {
                EngineError::invalid_argument(format!(
                    "grammar is not valid GBNF: {e} (see llama.cpp's grammars/README.md)"
                ))
            })?;
            Ok((Some(g.to_string()), tokens))
        }
        (None, Some(schema)) => {
            let gbnf_text = json_schema::to_gbnf(schema)?;
            // llama.cpp's converter writes what the schema says, including what its grammar
            // parser cannot survive: `minLength: 5, maxLength: 1` becomes `{5,1}`.
            let tokens = gbnf::check(&gbnf_text, "root").map_err(|e| {
                EngineError::invalid_argument(format!(
                    "jsonSchema describes no valid grammar: {e} (check minLength/maxLength, minItems/maxItems and nesting)"
                ))
            })?;
            Ok((Some(gbnf_text), tokens))
        }
        (None, None) => Ok((None, Vec::new())),
    }
}
