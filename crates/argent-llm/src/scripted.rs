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
    /// Requests answered so far (kept or not).
    count: usize,
    /// Requests are counted but not kept ([`ScriptedModel::forgetting_requests`]).
    forget: bool,
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

    /// Counts the requests it answers but keeps none of them ([`ScriptedModel::requests`]
    /// stays empty): for a benchmark, where copying every request (the whole history and
    /// the tool schemas) is the test double's cost, not the code under test's.
    pub fn forgetting_requests(self) -> Self {
        self.lock().forget = true;
        self
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

    /// Every request received so far, in order (none if it is
    /// [`ScriptedModel::forgetting_requests`]).
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.lock().received.clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<ChatRequest> {
        self.lock().received.last().cloned()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.lock().count
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
        let index = script.count;
        script.count += 1;
        if !script.forget {
            script.received.push(req.clone());
        }
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
    async fn a_forgetting_model_answers_and_counts_but_keeps_no_request() {
        let model =
            ScriptedModel::with_responses([ChatResponse::text("one")]).forgetting_requests();
        let r = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("a")]))
            .await
            .unwrap();
        assert_eq!(r.content.as_deref(), Some("one"));
        let e = model
            .chat(&ChatRequest::new(vec![ChatMessage::user("b")]))
            .await
            .unwrap_err();
        assert_eq!(e, LlmError::ScriptExhausted { index: 1 });
        assert_eq!(model.request_count(), 2);
        assert!(model.requests().is_empty());
        assert!(model.last_request().is_none());
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
