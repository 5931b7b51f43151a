//! The `ChatModel` trait: the one seam between argent and any language model.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse};

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
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Arc<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).chat(req).await
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
}
