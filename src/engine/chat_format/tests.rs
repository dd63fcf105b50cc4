//! The parser path on fixed texts in the formats of several template families: the template
//! goes through llama.cpp's chat formats, and a reply written the way that family writes calls
//! comes back as content, reasoning and tool calls.

use super::*;

const HERMES: &str = include_str!("../../../templates/chatml-tools.jinja");
const THINKING: &str = include_str!("../../../templates/chatml-thinking.jinja");
/// Mistral's family: calls as a JSON array after `[TOOL_CALLS]`.
const MISTRAL: &str = r#"{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{% if loop.last and tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}[INST]{{ m.content }}[/INST]{% elif m.role == 'assistant' %}{% if m.tool_calls %}[TOOL_CALLS][{% for c in m.tool_calls %}{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}{% if not loop.last %}, {% endif %}{% endfor %}]{{ eos_token }}{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% elif m.role == 'tool' %}[TOOL_RESULTS]{"content": {{ m.content | tojson }}}[/TOOL_RESULTS]{% endif %}{% endfor %}"#;

fn weather_tool() -> ChatFormatParams {
    ChatFormatParams::validate(
        Some(r#"[{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]"#),
        None,
        None,
        None,
        None,
    )
    .unwrap()
}

fn plan(source: &str, params: &ChatFormatParams) -> (String, ReplyPlan) {
    let formats = ChatFormats::new(Some(source), None, "<s>", "</s>")
        .unwrap()
        .unwrap();
    formats
        .render(
            &[ChatMessage::text(Role::User, "هوای تهران چطور است؟")],
            params,
        )
        .unwrap()
}

/// Feeds the reply in pieces of `step` bytes (on character boundaries), as tokens would come.
fn read(plan: &ReplyPlan, reply: &str, step: usize) -> (ParsedReply, Vec<ReplyDelta>) {
    let mut parser = StructuredReply::new(&plan.parser).unwrap();
    let mut deltas = Vec::new();
    let mut at = 0;
    while at < reply.len() {
        let mut end = (at + step).min(reply.len());
        while !reply.is_char_boundary(end) {
            end += 1;
        }
        deltas.extend(parser.push(&reply[at..end]));
        at = end;
    }
    let (parsed, rest) = parser.finish();
    deltas.extend(rest);
    (parsed, deltas)
}

fn joined(deltas: &[ReplyDelta], part: impl Fn(&ReplyDelta) -> &str) -> String {
    deltas.iter().map(part).collect()
}

#[test]
fn hermes_calls_are_parsed_whole_and_streamed_without_markup() {
    let (prompt, plan) = plan(HERMES, &weather_tool());
    assert!(prompt.contains("get_weather") && prompt.ends_with("<|im_start|>assistant\n"));
    let grammar = plan.grammar.as_ref().expect("a tool-call grammar");
    assert!(grammar.lazy, "auto: free text until a call starts");
    assert!(grammar
        .trigger_patterns
        .iter()
        .any(|p| p.contains("<tool_call>")));
    let reply = "یک لحظه.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"تهران\"}}\n</tool_call>";
    for step in [1, 3, 7, reply.len()] {
        let (parsed, deltas) = read(&plan, reply, step);
        assert_eq!(parsed.content.trim(), "یک لحظه.");
        assert_eq!(parsed.tool_calls.len(), 1);
        let call = &parsed.tool_calls[0];
        assert_eq!(call.name, "get_weather");
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args, json!({ "city": "تهران" }));
        assert!(call.id.starts_with("call_"));
        let text = joined(&deltas, |d| &d.text);
        assert!(
            !text.contains("<tool_call>") && !text.contains("get_weather"),
            "{text:?}"
        );
        let pieces: Vec<&ToolCallDelta> =
            deltas.iter().filter_map(|d| d.tool_call.as_ref()).collect();
        assert_eq!(pieces[0].name, "get_weather", "the name comes first");
        assert_eq!(pieces[0].id, call.id);
        let arguments: String = pieces.iter().map(|p| p.arguments.as_str()).collect();
        assert_eq!(arguments, call.arguments, "the argument pieces add up");
    }
}

#[test]
fn two_hermes_calls_in_one_reply() {
    let mut params = weather_tool();
    params.parallel_tool_calls = true;
    let (_, plan) = plan(HERMES, &params);
    let reply = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"شیراز\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let (parsed, deltas) = read(&plan, reply, 5);
    assert_eq!(parsed.tool_calls.len(), 2);
    assert!(parsed.tool_calls[1].arguments.contains("Paris"));
    assert_ne!(parsed.tool_calls[0].id, parsed.tool_calls[1].id);
    assert!(deltas
        .iter()
        .any(|d| d.tool_call.as_ref().is_some_and(|c| c.index == 1)));
}

#[test]
fn plain_text_stays_content_when_no_call_is_made() {
    let (_, plan) = plan(HERMES, &weather_tool());
    let (parsed, _) = read(&plan, "هوا آفتابی است.", 4);
    assert_eq!(parsed.content, "هوا آفتابی است.");
    assert!(parsed.tool_calls.is_empty());
}

#[test]
fn required_and_named_choices_make_the_grammar_strict() {
    let mut params = weather_tool();
    params.tool_choice = ToolChoice::Required;
    let (_, plan) = plan(HERMES, &params);
    let grammar = plan.grammar.expect("grammar");
    assert!(!grammar.lazy);
    let root = grammar
        .gbnf
        .lines()
        .find(|l| l.starts_with("root ::="))
        .unwrap();
    assert!(!root.contains("until-"), "the call comes first: {root}");
    assert!(grammar.generation_prompt.ends_with("assistant\n"));
}

#[test]
fn mistral_calls_are_parsed() {
    let (prompt, plan) = plan(MISTRAL, &weather_tool());
    assert!(prompt.contains("[AVAILABLE_TOOLS]"), "{prompt}");
    let reply = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"اصفهان\"}}]";
    let (parsed, deltas) = read(&plan, reply, 4);
    assert_eq!(parsed.tool_calls.len(), 1, "{parsed:?}");
    assert_eq!(parsed.tool_calls[0].name, "get_weather");
    assert!(parsed.tool_calls[0].arguments.contains("اصفهان"));
    assert!(!joined(&deltas, |d| &d.text).contains("TOOL_CALLS"));
}

#[test]
fn thinking_is_read_apart_from_the_answer() {
    let formats = ChatFormats::new(Some(THINKING), None, "", "")
        .unwrap()
        .unwrap();
    assert!(formats.supports_thinking);
    let params = ChatFormatParams::default();
    let (prompt, plan) = formats
        .render(&[ChatMessage::text(Role::User, "سلام")], &params)
        .unwrap();
    assert!(prompt.ends_with("<think>\n"), "{prompt:?}");
    assert!(plan.starts_thinking && plan.separate_reasoning);
    let (parsed, deltas) = read(&plan, "باید سلام کنم.\n</think>\n\nسلام!", 3);
    assert_eq!(parsed.reasoning.trim(), "باید سلام کنم.");
    assert_eq!(parsed.content, "سلام!");
    assert_eq!(joined(&deltas, |d| &d.text), "سلام!");
    assert!(!joined(&deltas, |d| &d.reasoning).contains("think"));

    let off = ChatFormatParams {
        reasoning: ReasoningMode::Off,
        ..ChatFormatParams::default()
    };
    let (prompt, plan) = formats
        .render(&[ChatMessage::text(Role::User, "سلام")], &off)
        .unwrap();
    assert!(prompt.ends_with("</think>\n\n"), "{prompt:?}");
    assert!(!plan.starts_thinking);
}

#[test]
fn bad_tools_are_refused_by_field() {
    let err = |tools: &str, choice: Option<&str>| {
        ChatFormatParams::validate(Some(tools), choice, None, None, None)
            .unwrap_err()
            .message
    };
    assert!(err(r#"[{"description":"x"}]"#, None).contains("tools[0] has no name"));
    assert!(
        err(r#"[{"name":"a","parameters":{"type":"string"}}]"#, None)
            .contains("tools[0].parameters")
    );
    assert!(err(r#"[{"name":"a","parameters":[1]}]"#, None).contains("tools[0].parameters"));
    assert!(err(r#"[{"name":"a b"}]"#, None).contains("tools[0].name"));
    assert!(err(r#"[{"name":"a"},{"name":"a"}]"#, None).contains("twice"));
    assert!(err(r#"[{"name":"a"}]"#, Some(r#"{"name":"b"}"#)).contains("not one of tools"));
    assert!(err(r#"[]"#, Some(r#""required""#)).contains("needs tools"));
    assert!(err(r#"[{"name":"a"}]"#, Some(r#""sometimes""#)).contains("toolChoice"));
}

#[test]
fn a_tool_message_must_answer_an_earlier_call() {
    let call = ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: "{\"city\":\"Tehran\"}".into(),
    };
    let mut assistant = ChatMessage::text(Role::Assistant, "");
    assistant.tool_calls = vec![call];
    let mut answer = ChatMessage::text(Role::Tool, "sunny");
    answer.tool_call_id = Some("call_1".into());
    let user = ChatMessage::text(Role::User, "weather?");
    options::check_tool_messages(&[user.clone(), assistant.clone(), answer.clone()]).unwrap();
    let err = options::check_tool_messages(&[user.clone(), answer.clone()]).unwrap_err();
    assert!(err.message.contains("messages[1]"), "{}", err.message);
    let mut stray = answer.clone();
    stray.tool_call_id = None;
    assert!(options::check_tool_messages(&[user, assistant, stray])
        .unwrap_err()
        .message
        .contains("toolCallId"));
}

#[test]
fn one_call_is_asked_for_only_where_calls_are_a_bare_repetition() {
    let bare = "root ::= tool-calls\ntool-calls ::= (tool-call space)+\ntool-call ::= \"x\"";
    assert!(shape_root(bare, false, false).starts_with("root ::= tool-call\n"));
    assert_eq!(shape_root(bare, false, true), bare);
    // A family that wraps its calls in a section keeps its rule.
    let section =
        "root ::= tool-calls\ntool-calls ::= \"<calls>\" space tool-call space \"</calls>\"";
    assert_eq!(shape_root(section, false, false), section);
}
