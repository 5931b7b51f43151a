//! The `ChatModel` trait: the one seam between argent and any language model.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::LlmError;
use crate::types::{ChatMessage, ChatRequest, ChatResponse};

/// A chat model: takes a normalized request, returns a normalized response.
///
/// Object-safe, so the agent can hold an `Arc<dyn ChatModel>` and swap the
/// real provider for a [`Replayer`](crate::Replayer), a
/// [`ScriptedModel`](crate::ScriptedModel) or an offline stand-in.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// A human-readable name shown to users, e.g.
    /// `gpt-4o-mini at https://api.openai.com/v1`. Stand-ins say what they are.
    fn name(&self) -> String;

    /// Send one chat request and wait for the full response.
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Whether a conversation still follows what this model expects, asked before what
    /// led to its last message is committed: `messages` is how the next request will
    /// begin (the run's messages so far, ending with a tool result). A
    /// [`Replayer`](crate::Replayer) answers whether they are a prefix of its next recorded
    /// request, so a replay that diverges in a tool result fails before that call's side
    /// effect is written, not one model call later. Live models accept anything.
    fn check_continuation(&self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        let _ = messages;
        Ok(())
    }
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Arc<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).chat(req).await
    }

    fn check_continuation(&self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        (**self).check_continuation(messages)
    }
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).chat(req).await
    }

    fn check_continuation(&self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        (**self).check_continuation(messages)
    }
}
