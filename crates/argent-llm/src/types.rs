//! Provider-neutral chat types.
//!
//! These are the only types the rest of argent sees: no provider SDK type
//! crosses this crate's boundary. They serialize with serde in a stable shape
//! that is also the shape stored in cassettes (see the crate docs).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The wire name of the role (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of a conversation.
///
/// Serialized with a `role` tag:
/// `{"role":"user","content":"..."}`,
/// `{"role":"assistant","content":null,"tool_calls":[...]}`,
/// `{"role":"tool","tool_call_id":"call_1","content":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions from the operator (the rendered system prompt).
    System { content: String },
    /// Text from the user side of the conversation.
    User { content: String },
    /// A model turn: text, tool calls, or both.
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of executing (or refusing) one tool call, answered by id.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage::System {
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::User {
            content: content.into(),
        }
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage::Assistant {
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    /// An assistant message that made tool calls (with optional text).
    pub fn assistant_tool_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        ChatMessage::Assistant {
            content,
            tool_calls,
        }
    }

    /// A tool result answering the tool call with id `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }

    /// The message's role.
    pub fn role(&self) -> Role {
        match self {
            ChatMessage::System { .. } => Role::System,
            ChatMessage::User { .. } => Role::User,
            ChatMessage::Assistant { .. } => Role::Assistant,
            ChatMessage::Tool { .. } => Role::Tool,
        }
    }

    /// The message's text, if it has any.
    pub fn content(&self) -> Option<&str> {
        match self {
            ChatMessage::System { content }
            | ChatMessage::User { content }
            | ChatMessage::Tool { content, .. } => Some(content),
            ChatMessage::Assistant { content, .. } => content.as_deref(),
        }
    }

    /// The tool calls of an assistant message (empty for other roles).
    pub fn tool_calls(&self) -> &[ToolCall] {
        match self {
            ChatMessage::Assistant { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }
}

/// A tool the model may call: name, description, and a JSON Schema for its
/// arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

impl ToolDefinition {
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        ToolDefinition {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// A tool call made by the model.
///
/// `arguments` is the model's raw text, exactly as the provider returned it.
/// It is never parsed, repaired or defaulted in this crate: malformed JSON
/// reaches the caller unchanged so that it can be reported back to the model
/// as an error (it must never silently become `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// How the model may use the tools it is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the provider's default when tools are present).
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Function { name: String },
}

fn no_tools(tools: &Arc<Vec<ToolDefinition>>) -> bool {
    tools.is_empty()
}

/// `ChatRequest::tools` as a plain list (serde's `Arc` support is behind a feature).
mod shared_tools {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ToolDefinition;

    pub fn serialize<S: Serializer>(
        tools: &Arc<Vec<ToolDefinition>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        tools.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<Vec<ToolDefinition>>, D::Error> {
        Vec::<ToolDefinition>::deserialize(d).map(Arc::new)
    }
}

/// A request to a chat model. The model name is not part of the request: it
/// belongs to the configured [`ChatModel`](crate::ChatModel).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Shared, not copied: an agent sends the same definitions (each with its JSON Schema)
    /// with every request.
    #[serde(default, skip_serializing_if = "no_tools", with = "shared_tools")]
    pub tools: Arc<Vec<ToolDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens. Sent as `max_completion_tokens` to
    /// OpenAI reasoning models (o-series, gpt-5) and as `max_tokens` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

impl ChatRequest {
    /// A request with these messages and nothing else set.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }

    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = Arc::new(tools);
        self
    }

    /// As [`ChatRequest::with_tools`], with definitions the caller keeps and shares.
    pub fn with_shared_tools(mut self, tools: Arc<Vec<ToolDefinition>>) -> Self {
        self.tools = tools;
        self
    }

    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    pub fn with_top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn with_parallel_tool_calls(mut self, parallel: bool) -> Self {
        self.parallel_tool_calls = Some(parallel);
        self
    }

    /// Names of the offered tools, in order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name.as_str()).collect()
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of the turn or a stop sequence.
    Stop,
    /// The token limit was reached; the output is truncated.
    Length,
    /// The model called one or more tools.
    ToolCalls,
    /// Content was withheld by the provider's filter.
    ContentFilter,
    /// The provider gave no reason, or one this crate does not know.
    #[serde(other)]
    Unknown,
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Unknown => "unknown",
        })
    }
}

/// Token usage of one model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.completion_tokens)
    }
}

/// A model's answer to a [`ChatRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text of the turn (may be absent when the model only called tools).
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls, in the order the model made them; arguments are raw text.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// The model that answered, as reported by the provider.
    pub model: String,
}

impl ChatResponse {
    /// A text-only answer (`finish_reason = stop`, zero usage, model
    /// `"scripted"`): handy for tests and the scripted model.
    pub fn text(content: impl Into<String>) -> Self {
        ChatResponse {
            content: Some(content.into()),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            model: "scripted".to_string(),
        }
    }

    /// An answer that calls these tools (`finish_reason = tool_calls`).
    pub fn tool_calls(tool_calls: Vec<ToolCall>) -> Self {
        ChatResponse {
            content: None,
            tool_calls,
            finish_reason: FinishReason::ToolCalls,
            usage: Usage::default(),
            model: "scripted".to_string(),
        }
    }

    pub fn with_usage(mut self, prompt_tokens: u32, completion_tokens: u32) -> Self {
        self.usage = Usage::new(prompt_tokens, completion_tokens);
        self
    }

    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn with_content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }

    pub fn has_tool_calls(&self) -> bool {
        !self.tool_calls.is_empty()
    }

    /// The assistant message to append to the conversation history so the
    /// next request carries this turn (text and tool calls, arguments raw).
    pub fn to_message(&self) -> ChatMessage {
        ChatMessage::Assistant {
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_serialize_with_a_role_tag() {
        let msgs = vec![
            ChatMessage::system("be brief"),
            ChatMessage::user("hi"),
            ChatMessage::assistant_tool_calls(
                None,
                vec![ToolCall::new("call_1", "read_aging", "{\"customer\":")],
            ),
            ChatMessage::tool_result("call_1", "error: invalid JSON"),
        ];
        let v = serde_json::to_value(&msgs).unwrap();
        assert_eq!(
            v,
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "name": "read_aging", "arguments": "{\"customer\":"}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "error: invalid JSON"}
            ])
        );
        let back: Vec<ChatMessage> = serde_json::from_value(v).unwrap();
        assert_eq!(back, msgs);
    }

    #[test]
    fn accessors_report_role_content_and_calls() {
        let m = ChatMessage::assistant_tool_calls(
            Some("checking".into()),
            vec![ToolCall::new("c", "read_aging", "{}")],
        );
        assert_eq!(m.role(), Role::Assistant);
        assert_eq!(m.content(), Some("checking"));
        assert_eq!(m.tool_calls().len(), 1);
        assert_eq!(
            ChatMessage::tool_result("c", "ok").role().to_string(),
            "tool"
        );
        assert!(ChatMessage::user("x").tool_calls().is_empty());
    }

    #[test]
    fn unknown_finish_reasons_deserialize_as_unknown() {
        let r: FinishReason = serde_json::from_value(json!("eos_token")).unwrap();
        assert_eq!(r, FinishReason::Unknown);
        let r: FinishReason = serde_json::from_value(json!("tool_calls")).unwrap();
        assert_eq!(r, FinishReason::ToolCalls);
    }

    #[test]
    fn response_to_message_keeps_raw_arguments() {
        let resp = ChatResponse::tool_calls(vec![ToolCall::new("a", "send_email", "{not json")]);
        assert_eq!(
            resp.to_message(),
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![ToolCall::new("a", "send_email", "{not json")]
            }
        );
        assert_eq!(Usage::new(3, 4).total(), 7);
    }

    #[test]
    fn tool_choice_shapes() {
        assert_eq!(
            serde_json::to_value(ToolChoice::Auto).unwrap(),
            json!("auto")
        );
        assert_eq!(
            serde_json::to_value(ToolChoice::Function {
                name: "escalate".into()
            })
            .unwrap(),
            json!({"function": {"name": "escalate"}})
        );
    }
}
