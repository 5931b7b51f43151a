//! A scripted model for tests: a queue of canned responses that records the
//! requests it receives.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::LlmError;
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, ToolCall};

#[derive(Debug, Default)]
struct Script {
    queue: VecDeque<Result<ChatResponse, LlmError>>,
    received: Vec<ChatRequest>,
}

/// A test double: answers each request with the next scripted response (or
/// error), in order, and keeps every request it received so tests can assert
/// on what the code under test sent. Running out of script is an error
/// ([`LlmError::ScriptExhausted`]), never a silent default.
#[derive(Debug)]
pub struct ScriptedModel {
    name: String,
    script: Mutex<Script>,
}

impl Default for ScriptedModel {
    fn default() -> Self {
        ScriptedModel::new()
    }
}

impl ScriptedModel {
    /// An empty script named `scripted test model`.
    pub fn new() -> Self {
        ScriptedModel::named("scripted test model")
    }

    /// An empty script with a custom name.
    pub fn named(name: impl Into<String>) -> Self {
        ScriptedModel {
            name: name.into(),
            script: Mutex::new(Script::default()),
        }
    }

    /// A script answering with these responses in order.
    pub fn with_responses(responses: impl IntoIterator<Item = ChatResponse>) -> Self {
        let model = ScriptedModel::new();
        for r in responses {
            model.push_response(r);
        }
        model
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        // A panic in another test thread must not hide this model's state.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a response.
    pub fn push_response(&self, response: ChatResponse) -> &Self {
        self.lock().queue.push_back(Ok(response));
        self
    }

    /// Queue a text-only response.
    pub fn push_text(&self, content: impl Into<String>) -> &Self {
        self.push_response(ChatResponse::text(content))
    }

    /// Queue a response calling these tools.
    pub fn push_tool_calls(&self, calls: Vec<ToolCall>) -> &Self {
        self.push_response(ChatResponse::tool_calls(calls))
    }

    /// Queue an error.
    pub fn push_error(&self, error: LlmError) -> &Self {
        self.lock().queue.push_back(Err(error));
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.lock().received.clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<ChatRequest> {
        self.lock().received.last().cloned()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.lock().received.len()
    }

    /// How many scripted responses are still queued.
    pub fn remaining(&self) -> usize {
        self.lock().queue.len()
    }
}

#[async_trait]
impl ChatModel for ScriptedModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut script = self.lock();
        let index = script.received.len();
        script.received.push(req.clone());
        match script.queue.pop_front() {
            Some(outcome) => outcome,
            None => Err(LlmError::ScriptExhausted { index }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ChatMessage;

    #[tokio::test]
    async fn answers_in_order_records_requests_and_fails_when_exhausted() {
        let model = ScriptedModel::new();
        model
            .push_tool_calls(vec![ToolCall::new(
                "c1",
                "read_aging",
                "{\"customer_id\":\"C-1\"}",
            )])
            .push_error(LlmError::Config("boom".into()))
            .push_text("done");
        assert_eq!(model.remaining(), 3);

        let r1 = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("a")]))
            .await
            .unwrap();
        assert_eq!(r1.tool_calls[0].name, "read_aging");
        let e = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("b")]))
            .await
            .unwrap_err();
        assert_eq!(e, LlmError::Config("boom".into()));
        let r3 = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("c")]))
            .await
            .unwrap();
        assert_eq!(r3.content.as_deref(), Some("done"));
        let e = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("d")]))
            .await
            .unwrap_err();
        assert_eq!(e, LlmError::ScriptExhausted { index: 3 });

        let seen: Vec<_> = model
            .requests()
            .iter()
            .map(|r| r.messages[0].content().unwrap().to_string())
            .collect();
        assert_eq!(seen, ["a", "b", "c", "d"]);
        assert_eq!(model.request_count(), 4);
        assert_eq!(model.remaining(), 0);
    }

    #[tokio::test]
    async fn usable_as_a_shared_trait_object() {
        let model: std::sync::Arc<dyn ChatModel> =
            std::sync::Arc::new(ScriptedModel::with_responses([ChatResponse::text("hi")]));
        assert_eq!(model.name(), "scripted test model");
        let r = model.chat(&ChatRequest::default()).await.unwrap();
        assert_eq!(r.content.as_deref(), Some("hi"));
    }
}
