// A C ABI over llama.cpp's `common/chat.h`: render a chat with tools through the model's own
// Jinja template, get back the grammar, triggers and PEG parser llama.cpp builds for that
// template family, and parse generated text (partial or whole) into content, reasoning and
// tool calls. Everything crosses as JSON text so that the Rust side never sees a C++ type,
// and no C++ exception crosses the boundary: each entry point catches and returns the message.

#include "chat.h"
#include "common.h"
#include "json.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

char * dup_string(const std::string & s) {
    char * out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out != nullptr) {
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = '\0';
    }
    return out;
}

int fail(char ** out, const char * what) {
    *out = dup_string(what != nullptr ? what : "unknown C++ exception");
    return 1;
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "unknown";
}

// The regular expression llama.cpp's own sampler builds for a trigger (common/sampling.cpp):
// words are escaped, full patterns anchored at both ends.
std::string trigger_pattern(const common_grammar_trigger & trigger) {
    switch (trigger.type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: return regex_escape(trigger.value);
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: return trigger.value;
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
            const std::string & p = trigger.value;
            if (p.empty()) {
                return "^$";
            }
            return (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : "");
        }
        default: return "";
    }
}

common_json tool_call_json(const common_chat_tool_call & call) {
    common_json j = common_json::object();
    j["id"] = call.id;
    j["name"] = call.name;
    j["arguments"] = call.arguments;
    return j;
}

common_json message_json(const common_chat_msg & msg) {
    common_json j = common_json::object();
    j["content"] = msg.content;
    j["reasoning_content"] = msg.reasoning_content;
    common_json calls = common_json::array();
    for (const auto & call : msg.tool_calls) {
        calls.push_back(tool_call_json(call));
    }
    j["tool_calls"] = calls;
    return j;
}

std::string random_call_id() {
    static thread_local std::mt19937_64 rng{ std::random_device{}() };
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string id = "call_";
    for (int i = 0; i < 24; i++) {
        id += alphabet[rng() % (sizeof(alphabet) - 1)];
    }
    return id;
}

struct chat_parser {
    common_chat_parser_params params;
    common_chat_msg previous;
    std::vector<std::string> ids;
};

}  // namespace

extern "C" {

void napi_llama_chat_string_free(char * s) {
    std::free(s);
}

// A Jinja chat template, parsed once. The caller passes the source (the model's own, its
// `tool_use` variant, or an override) and the BOS/EOS texts the template may print.
void * napi_llama_chat_templates_new(const char * source, const char * bos_token, const char * eos_token,
                                     char ** error) {
    try {
        auto templates = common_chat_templates_init(nullptr, source, bos_token, eos_token);
        return templates.release();
    } catch (const std::exception & e) {
        fail(error, e.what());
    } catch (...) {
        fail(error, nullptr);
    }
    return nullptr;
}

void napi_llama_chat_templates_free(void * templates) {
    common_chat_templates_free(static_cast<common_chat_templates *>(templates));
}

// Renders a chat. `request` is JSON: {"messages": [OpenAI messages], "tools": [OpenAI tools],
// "tool_choice": "auto"|"required"|"none", "parallel_tool_calls": bool,
// "enable_thinking": bool, "reasoning": bool}. On success `*out` is the JSON of what
// llama.cpp decided (prompt, grammar, triggers, parser, stops) and 0 is returned.
int napi_llama_chat_apply(const void * templates, const char * request, char ** out) {
    try {
        const common_json req = common_json::parse(request);
        common_chat_templates_inputs inputs;
        inputs.messages = common_chat_msgs_parse_oaicompat(req.at("messages"));
        if (req.contains("tools")) {
            inputs.tools = common_chat_tools_parse_oaicompat(req.at("tools"));
        }
        inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(req.at("tool_choice").get<std::string>());
        inputs.parallel_tool_calls = req.at("parallel_tool_calls").get<bool>();
        inputs.enable_thinking = req.at("enable_thinking").get<bool>();
        inputs.reasoning_format = req.at("reasoning").get<bool>() ? COMMON_REASONING_FORMAT_DEEPSEEK
                                                                  : COMMON_REASONING_FORMAT_NONE;
        inputs.add_generation_prompt = true;
        inputs.use_jinja = true;

        const auto * tmpls = static_cast<const common_chat_templates *>(templates);
        const common_chat_params params = common_chat_templates_apply(tmpls, inputs);

        common_json j = common_json::object();
        j["format"] = std::string(common_chat_format_name(params.format));
        j["prompt"] = params.prompt;
        j["grammar"] = params.grammar;
        j["grammar_lazy"] = params.grammar_lazy;
        j["generation_prompt"] = params.generation_prompt;
        j["supports_thinking"] = params.supports_thinking;
        j["thinking_start_tag"] = params.thinking_start_tag;
        common_json end_tags = common_json::array();
        for (const auto & tag : params.thinking_end_tags) {
            end_tags.push_back(common_json::make(tag));
        }
        j["thinking_end_tags"] = end_tags;
        common_json patterns = common_json::array();
        common_json tokens = common_json::array();
        common_json triggers = common_json::array();
        for (const auto & trigger : params.grammar_triggers) {
            common_json t = common_json::object();
            t["type"] = std::string(trigger_type_name(trigger.type));
            t["value"] = trigger.value;
            triggers.push_back(t);
            if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN) {
                tokens.push_back(common_json::make(static_cast<int64_t>(trigger.token)));
            } else {
                patterns.push_back(common_json::make(trigger_pattern(trigger)));
            }
        }
        j["grammar_triggers"] = triggers;
        j["trigger_patterns"] = patterns;
        j["trigger_tokens"] = tokens;
        common_json preserved = common_json::array();
        for (const auto & token : params.preserved_tokens) {
            preserved.push_back(common_json::make(token));
        }
        j["preserved_tokens"] = preserved;
        common_json stops = common_json::array();
        for (const auto & stop : params.additional_stops) {
            stops.push_back(common_json::make(stop));
        }
        j["additional_stops"] = stops;
        j["parser"] = params.parser;
        *out = dup_string(j.dump());
        return 0;
    } catch (const std::exception & e) {
        return fail(out, e.what());
    } catch (...) {
        return fail(out, nullptr);
    }
}

// A parser for one reply. `params` is JSON: {"format": name, "parser": serialized PEG arena,
// "generation_prompt": text, "reasoning": bool, "parse_tool_calls": bool}.
void * napi_llama_chat_parser_new(const char * params_json, char ** error) {
    try {
        const common_json req = common_json::parse(params_json);
        auto parser = std::make_unique<chat_parser>();
        const std::string format = req.at("format").get<std::string>();
        for (int f = 0; f < COMMON_CHAT_FORMAT_COUNT; f++) {
            if (format == common_chat_format_name(static_cast<common_chat_format>(f))) {
                parser->params.format = static_cast<common_chat_format>(f);
            }
        }
        parser->params.generation_prompt = req.at("generation_prompt").get<std::string>();
        parser->params.reasoning_format = req.at("reasoning").get<bool>() ? COMMON_REASONING_FORMAT_DEEPSEEK
                                                                          : COMMON_REASONING_FORMAT_NONE;
        parser->params.parse_tool_calls = req.at("parse_tool_calls").get<bool>();
        const std::string arena = req.at("parser").get<std::string>();
        if (!arena.empty()) {
            parser->params.parser.load(arena);
        }
        return parser.release();
    } catch (const std::exception & e) {
        fail(error, e.what());
    } catch (...) {
        fail(error, nullptr);
    }
    return nullptr;
}

void napi_llama_chat_parser_free(void * parser) {
    delete static_cast<chat_parser *>(parser);
}

// Parses the reply so far (`partial`: more may come). `*out` is JSON {"message": {content,
// reasoning_content, tool_calls: [{id, name, arguments}]}, "diffs": [{content, reasoning,
// index, id, name, arguments}]}, the diffs against the previous successful parse. A partial
// text the parser cannot read yet gives no diffs; a whole text it cannot read is an error.
int napi_llama_chat_parser_update(void * handle, const char * text, size_t len, bool partial, char ** out) {
    try {
        auto * parser = static_cast<chat_parser *>(handle);
        common_chat_msg msg;
        try {
            msg = common_chat_parse(std::string(text, len), partial, parser->params);
        } catch (const std::exception &) {
            if (!partial) {
                throw;
            }
            msg = parser->previous;
        }
        msg.set_tool_call_ids(parser->ids, random_call_id);
        common_json diffs = common_json::array();
        // A parse that does not extend the previous one (the parser read the text differently
        // once more of it came) has no diff: the whole message still stands.
        std::vector<common_chat_msg_diff> changes;
        try {
            changes = common_chat_msg_diff::compute_diffs(parser->previous, msg);
        } catch (const std::exception &) {
            changes.clear();
        }
        for (const auto & diff : changes) {
            common_json d = common_json::object();
            d["content"] = diff.content_delta;
            d["reasoning"] = diff.reasoning_content_delta;
            if (diff.tool_call_index != std::string::npos) {
                d["index"] = static_cast<int64_t>(diff.tool_call_index);
                d["id"] = diff.tool_call_delta.id;
                d["name"] = diff.tool_call_delta.name;
                d["arguments"] = diff.tool_call_delta.arguments;
            }
            diffs.push_back(d);
        }
        parser->previous = msg;
        common_json j = common_json::object();
        // The whole message only when it is final: a partial update's diffs say all there is,
        // and serializing the reply so far on every token would cost its length each time.
        if (!partial) {
            j["message"] = message_json(msg);
        }
        j["diffs"] = diffs;
        *out = dup_string(j.dump());
        return 0;
    } catch (const std::exception & e) {
        return fail(out, e.what());
    } catch (...) {
        return fail(out, nullptr);
    }
}

}  // extern "C"
