//! From caller input to prompt tokens: chat rendering, tokenization with control-token text
//! kept as text, and the context policy (reject, or drop the oldest turns).

use llama_cpp_2::token::LlamaToken;

use super::chat_template::{ChatMessage, Role};
use crate::engine::chat_format::{ReplyPlan, ToolChoice};
use crate::engine::error::{EngineError, EngineResult, ErrorCode};
use crate::engine::load::Loaded;
use crate::engine::options::{OverflowPolicy, RequestParams};
use crate::engine::Input;

fn overflow_error(prompt: usize, n_ctx: u32, hint: &str) -> EngineError {
    EngineError::new(
        ErrorCode::ContextOverflow,
        format!(
            "the prompt is {prompt} tokens but the context holds {n_ctx} (one more is needed for the reply): {hint}"
        ),
    )
}

/// A prompt ready for a slot.
pub struct FittedPrompt {
    pub tokens: Vec<LlamaToken>,
    /// Chat messages dropped to make it fit.
    pub dropped_messages: u32,
    /// How to constrain and read the reply of a request with tools or reasoning.
    pub reply_plan: Option<ReplyPlan>,
}

/// Tokenizes the input and applies the request's context policy.
pub fn fit_prompt(
    loaded: &Loaded,
    input: &Input,
    params: &RequestParams,
) -> EngineResult<FittedPrompt> {
    let (tokens, reply_plan) = request_tokens(loaded, input, params)?;
    let (tokens, dropped_messages, reply_plan) = fit(loaded, input, params, tokens, reply_plan)?;
    Ok(FittedPrompt {
        tokens,
        dropped_messages,
        reply_plan,
    })
}

type Rendered = (Vec<LlamaToken>, Option<ReplyPlan>);

/// A request's prompt tokens: through llama.cpp's chat formats when it has tools, tool
/// history or a thinking template, else through the plain renderer.
fn request_tokens(
    loaded: &Loaded,
    input: &Input,
    params: &RequestParams,
) -> EngineResult<Rendered> {
    let chat = &params.chat_format;
    match input {
        Input::Chat(messages) => {
            let thinks = loaded
                .chat_formats
                .as_ref()
                .is_some_and(|f| f.supports_thinking);
            if chat.is_structured(messages, thinks) {
                return structured_tokens(loaded, messages, params);
            }
        }
        Input::Text(_) if !chat.tools.is_empty() => {
            return Err(EngineError::invalid_argument(
                "tools need chat input (an array of messages), not a raw prompt",
            ))
        }
        Input::Text(_) => {}
    }
    Ok((prompt_tokens(loaded, input, params.parse_special)?, None))
}

fn structured_tokens(
    loaded: &Loaded,
    messages: &[ChatMessage],
    params: &RequestParams,
) -> EngineResult<Rendered> {
    let Some(formats) = &loaded.chat_formats else {
        // Tools the model may not call change nothing a plain template can show.
        let history_has_tools = messages
            .iter()
            .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty());
        if params.chat_format.tool_choice == ToolChoice::None && !history_has_tools {
            let tokens = prompt_tokens(
                loaded,
                &Input::Chat(messages.to_vec()),
                params.parse_special,
            )?;
            return Ok((tokens, None));
        }
        return Err(EngineError::invalid_argument(
            "tool calls need a Jinja chat template that llama.cpp can read, and this model has none: pass chatTemplate at load (the package ships templates/chatml-tools.jinja)",
        ));
    };
    // llama.cpp renders the whole prompt as one text, tokenized with control tokens: every
    // caller-given text in it is checked, the tools' names, descriptions and schemas included.
    let has_control = |text: &str| loaded.tokenizer.has_control_text(&loaded.model, text);
    let tools_text = serde_json::to_string(&params.chat_format.tools).unwrap_or_default();
    if !params.parse_special
        && (has_control(&tools_text)
            || messages.iter().any(|m| {
                has_control(&m.content)
                    || m.tool_call_id.as_deref().is_some_and(has_control)
                    || m.tool_calls.iter().any(|c| {
                        has_control(&c.arguments) || has_control(&c.name) || has_control(&c.id)
                    })
            }))
    {
        return Err(special_text_error());
    }
    let (rendered, mut plan) = formats.render(messages, &params.chat_format)?;
    let ids = |text: &str| -> Vec<i32> {
        loaded
            .tokenize(text, false, true)
            .iter()
            .map(|t| t.0)
            .collect()
    };
    plan.control_tokens = plan
        .preserved_tokens
        .iter()
        .map(|t| ids(t))
        .filter(|t| t.len() == 1)
        .map(|t| t[0])
        .collect();
    plan.thinking_end_tokens = plan
        .thinking_end_tags
        .first()
        .map(|t| ids(t))
        .unwrap_or_default();
    if let Some(grammar) = plan.grammar.as_mut().filter(|g| !g.lazy) {
        grammar.prefill_tokens = prefill_tokens(loaded, &grammar.generation_prompt);
    }
    let add_bos =
        loaded.model.vocab().should_add_bos() && !loaded.template.starts_with_bos(&rendered);
    let tokens = loaded.tokenize(&rendered, add_bos, true);
    if tokens.is_empty() {
        return Err(EngineError::invalid_argument(
            "the input produced no tokens",
        ));
    }
    Ok((tokens, Some(plan)))
}

/// The generation prompt's tokens as a strict tool grammar expects them, as llama.cpp's own
/// sampler feeds them: a tokenizer that puts a space token before a leading control token
/// does not get that space fed.
fn prefill_tokens(loaded: &Loaded, generation_prompt: &str) -> Vec<i32> {
    let tokens = loaded.tokenize(generation_prompt, false, true);
    let starts_with_space = generation_prompt.starts_with(char::is_whitespace);
    tokens
        .iter()
        .enumerate()
        .filter(|&(i, t)| {
            let piece = loaded.model.vocab().token_to_piece(*t, true, None);
            !(i == 0 && piece.first().is_some_and(u8::is_ascii_whitespace) && !starts_with_space)
        })
        .map(|(_, t)| t.0)
        .collect()
}

/// Applies the context policy (reject, or drop the oldest turns).
fn fit(
    loaded: &Loaded,
    input: &Input,
    params: &RequestParams,
    tokens: Vec<LlamaToken>,
    plan: Option<ReplyPlan>,
) -> EngineResult<(Vec<LlamaToken>, u32, Option<ReplyPlan>)> {
    let n_ctx = loaded.n_ctx_per_seq;
    let fits = |n: usize, reserve: usize| n + reserve <= n_ctx as usize;
    if fits(tokens.len(), 1) {
        return Ok((tokens, 0, plan));
    }
    let messages = match (input, params.overflow) {
        (_, OverflowPolicy::Error) => {
            return Err(overflow_error(
                tokens.len(),
                n_ctx,
                "shorten the input, raise contextSize, or pass contextOverflow: 'drop-oldest' for chat input",
            ))
        }
        (Input::Text(_), OverflowPolicy::DropOldest) => {
            return Err(overflow_error(
                tokens.len(),
                n_ctx,
                "a raw prompt has no turns to drop: shorten it or raise contextSize",
            ))
        }
        (Input::Chat(messages), OverflowPolicy::DropOldest) => messages,
    };
    // Leave room for a useful reply, not just one token: up to maxTokens, at most a quarter
    // of the context.
    let reserve = (params.max_tokens as usize).clamp(1, (n_ctx as usize / 4).max(1));
    // Drop points: how many of the droppable messages (oldest first) go. A conversation must
    // not start with the assistant, so whole turns go: never stop right before an assistant
    // message. The prompt shrinks as more goes, so a binary search needs only O(log n)
    // renderings (this runs on the prompt thread, ahead of every request behind it).
    let droppable: Vec<usize> = droppable_indices(messages);
    let cuts: Vec<usize> = (1..=droppable.len())
        // A tool's answer is not kept without the call it answers.
        .filter(|&k| {
            k == droppable.len()
                || !matches!(messages[droppable[k]].role, Role::Assistant | Role::Tool)
        })
        .collect();
    let render = |k: usize| {
        let kept: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !droppable[..k].contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        request_tokens(loaded, &Input::Chat(kept), params)
    };
    let (mut lo, mut hi) = (0usize, cuts.len());
    let mut found: Option<(Rendered, usize)> = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let rendered = render(cuts[mid])?;
        if fits(rendered.0.len(), reserve) {
            found = Some((rendered, cuts[mid]));
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (best, dropped) = match (found, cuts.last()) {
        (Some(f), _) => f,
        (None, Some(&all)) => (render(all)?, all),
        (None, None) => ((tokens, plan), 0),
    };
    if dropped > 0 && fits(best.0.len(), 1) {
        tracing::debug!(
            dropped,
            prompt_tokens = best.0.len(),
            "dropped old chat turns to fit the context"
        );
        Ok((best.0, dropped as u32, best.1))
    } else {
        Err(overflow_error(
            best.0.len(),
            n_ctx,
            "even with every older turn dropped the system prompt and last message do not fit: shorten them or raise contextSize",
        ))
    }
}

/// Indices of the messages that may be dropped, oldest first: not system messages, not the
/// last message.
fn droppable_indices(messages: &[ChatMessage]) -> Vec<usize> {
    let last = messages.len().saturating_sub(1);
    (0..last)
        .filter(|&i| messages[i].role != Role::System)
        .collect()
}

/// The prompt's tokens. Raw text is tokenized as text. Chat messages are rendered with the
/// chat template, whose own markers (`<|im_start|>` …) become control tokens, while text that
/// looks like a control token inside a message's content stays text, so a user cannot forge a
/// system turn, unless `parse_special` asks for it.
pub fn prompt_tokens(
    loaded: &Loaded,
    input: &Input,
    parse_special: bool,
) -> EngineResult<Vec<LlamaToken>> {
    let vocab = loaded.model.vocab();
    let tokens = match input {
        Input::Text(text) => {
            if text.is_empty() {
                return Err(EngineError::invalid_argument("the prompt is empty"));
            }
            loaded.tokenize(text, vocab.should_add_bos(), parse_special)
        }
        Input::Chat(messages) => {
            if messages.is_empty() {
                return Err(EngineError::invalid_argument(
                    "messages is empty: pass at least one message",
                ));
            }
            chat_tokens(loaded, messages, parse_special)?
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::invalid_argument(
            "the input produced no tokens",
        ));
    }
    tracing::trace!(tokens = ?tokens.iter().map(|t| t.0).collect::<Vec<_>>(), "prompt tokens");
    Ok(tokens)
}

/// Marks a message's place in a rendered template: private-use characters that no template
/// produces and no text needs.
fn placeholder(i: usize) -> String {
    format!("\u{E000}napi-llama-message-{i}\u{E001}")
}

fn chat_tokens(
    loaded: &Loaded,
    messages: &[ChatMessage],
    parse_special: bool,
) -> EngineResult<Vec<LlamaToken>> {
    let vocab = loaded.model.vocab();
    let rendered = loaded.template.render(&loaded.model, messages)?;
    tracing::trace!(prompt = %rendered, "rendered chat prompt");
    let add_bos = vocab.should_add_bos() && !loaded.template.starts_with_bos(&rendered);
    let has_special_text =
        |m: &ChatMessage| loaded.tokenizer.has_control_text(&loaded.model, &m.content);
    // The common case, and the one whose tokens prompt caches see: one tokenization of the
    // whole text, exactly as llama.cpp's own server does it.
    if parse_special || !messages.iter().any(has_special_text) {
        return Ok(loaded.tokenize(&rendered, add_bos, true));
    }
    // Some content contains control-token text: render again with placeholders to learn where
    // each content sits, then tokenize the template's text with control tokens and the
    // contents as plain text.
    let marked: Vec<ChatMessage> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| ChatMessage {
            content: placeholder(i),
            ..m.clone()
        })
        .collect();
    let skeleton = loaded.template.render(&loaded.model, &marked)?;
    let mut segments: Vec<(&str, bool)> = Vec::new(); // (text, is_content)
    let mut rest = skeleton.as_str();
    let mut rebuilt = String::with_capacity(rendered.len());
    for (i, m) in messages.iter().enumerate() {
        let mark = placeholder(i);
        let Some(at) = rest.find(&mark) else {
            return Err(special_text_error());
        };
        segments.push((&rest[..at], false));
        segments.push((m.content.as_str(), true));
        rebuilt.push_str(&rest[..at]);
        rebuilt.push_str(&m.content);
        rest = &rest[at + mark.len()..];
    }
    segments.push((rest, false));
    rebuilt.push_str(rest);
    // A template that transforms content (trims it, say) cannot be split this way.
    if rebuilt != rendered {
        return Err(special_text_error());
    }
    let mut tokens = Vec::new();
    let mut first = true;
    for (text, is_content) in segments {
        if text.is_empty() {
            continue;
        }
        tokens.extend(loaded.tokenize(text, first && add_bos, !is_content));
        first = false;
    }
    Ok(tokens)
}

fn special_text_error() -> EngineError {
    EngineError::invalid_argument(
        "a message contains control-token text (like <|im_start|>) that this chat template would turn into control tokens: remove it, or pass parseSpecialTokens: true if it is meant",
    )
}
