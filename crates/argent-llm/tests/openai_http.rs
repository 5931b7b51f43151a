//! The real async-openai path, end to end, against a fake OpenAI-compatible
//! server on 127.0.0.1. No test reaches beyond the loopback interface.

mod common;

use std::time::{Duration, Instant};

use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, FinishReason, LlmError, OpenAiConfig, OpenAiModel,
    RetryPolicy, TokenCounter, ToolCall, Usage,
};
use common::*;
use serde_json::json;

#[tokio::test]
async fn plain_reply_is_normalized_and_the_request_carries_model_tools_and_key() {
    let server = FakeServer::start(|_| Reply::Json(200, text_completion("Hello, ACME."))).await;
    let model = model_for(&server, 0);
    let req = collections_request("Hi, when is our invoice due?");

    let resp = model.chat(&req).await.unwrap();

    assert_eq!(resp.content.as_deref(), Some("Hello, ACME."));
    assert!(resp.tool_calls.is_empty());
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    assert_eq!(resp.usage, Usage::new(12, 5));
    assert_eq!(resp.model, "fake-model-2024");

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer test-key")
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.body["temperature"], json!(0.2));
    assert_eq!(r.body["max_tokens"], 256);
    assert_eq!(
        r.body["messages"],
        json!([
            {"role": "system", "content": "You are argent, a collections assistant for ACME Supplies. Be courteous and factual."},
            {"role": "user", "content": "Hi, when is our invoice due?"}
        ])
    );
    assert_eq!(
        r.body["tools"],
        json!([
            {"type": "function", "function": {"name": "read_aging", "description": "Read the aging buckets of a customer", "parameters": read_aging_schema()}},
            {"type": "function", "function": {"name": "log_promise", "description": "Record a promise to pay", "parameters": log_promise_schema()}}
        ])
    );
    assert!(r.body.get("stream").is_none_or(|s| s == false));

    assert_eq!(model.name(), format!("gpt-4o-mini at {}", server.base_url));
    assert_eq!(
        model.endpoint(),
        format!("{}/chat/completions", server.base_url)
    );
}

#[tokio::test]
async fn tool_calls_are_returned_in_order_with_ids() {
    let server = FakeServer::start(|_| {
        Reply::Json(
            200,
            tool_completion(&[
                ("call_a", "read_aging", r#"{"customer_id":"C-1"}"#),
                (
                    "call_b",
                    "log_promise",
                    r#"{"customer_id":"C-1","amount_minor":120050,"due_date":"2025-07-04"}"#,
                ),
            ]),
        )
    })
    .await;
    let resp = model_for(&server, 0)
        .chat(&collections_request("We will pay 1,200.50 on July 4th."))
        .await
        .unwrap();

    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    assert_eq!(resp.content, None);
    assert_eq!(
        resp.tool_calls,
        vec![
            ToolCall::new("call_a", "read_aging", r#"{"customer_id":"C-1"}"#),
            ToolCall::new(
                "call_b",
                "log_promise",
                r#"{"customer_id":"C-1","amount_minor":120050,"due_date":"2025-07-04"}"#
            ),
        ]
    );
}

#[tokio::test]
async fn malformed_tool_arguments_arrive_raw_and_unchanged() {
    let truncated = r#"{"customer_id": "C-1", "amount_minor": 120050"#;
    let prose = "customer_id=C-1, amount=1200.50 €";
    let padded = "  {\"customer_id\" :\"C-1\"}\n";
    let server = FakeServer::start(move |_| {
        Reply::Json(
            200,
            tool_completion(&[
                ("c1", "log_promise", truncated),
                ("c2", "log_promise", prose),
                ("c3", "read_aging", padded),
                ("c4", "read_aging", ""),
            ]),
        )
    })
    .await;
    let resp = model_for(&server, 0)
        .chat(&collections_request("pay later"))
        .await
        .unwrap();

    let args: Vec<&str> = resp
        .tool_calls
        .iter()
        .map(|c| c.arguments.as_str())
        .collect();
    assert_eq!(args, [truncated, prose, padded, ""]);
    // They really are malformed: nothing here turned them into `{}`.
    assert!(serde_json::from_str::<serde_json::Value>(truncated).is_err());
    assert!(serde_json::from_str::<serde_json::Value>(prose).is_err());
}

#[tokio::test]
async fn history_with_tool_calls_and_results_goes_out_in_wire_form() {
    let server = FakeServer::start(|_| Reply::Json(200, text_completion("Noted."))).await;
    let mut req = collections_request("We will pay Friday.");
    req.messages.push(ChatMessage::assistant_tool_calls(
        None,
        vec![ToolCall::new(
            "call_1",
            "log_promise",
            r#"{"amount_minor": 5"#,
        )],
    ));
    req.messages.push(ChatMessage::tool_result(
        "call_1",
        "error: arguments are not valid JSON (EOF while parsing an object at line 1 column 17)",
    ));
    model_for(&server, 0).chat(&req).await.unwrap();

    let body = &server.received()[0].body;
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "log_promise", "arguments": "{\"amount_minor\": 5"}}
        ]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_1",
               "content": "error: arguments are not valid JSON (EOF while parsing an object at line 1 column 17)"})
    );
}

#[tokio::test]
async fn a_429_then_success_is_retried_once_and_succeeds() {
    let server = FakeServer::start(|n| {
        if n == 0 {
            Reply::Json(
                429,
                openai_error(
                    "Rate limit reached for requests",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
            )
        } else {
            Reply::Json(200, text_completion("after the rate limit"))
        }
    })
    .await;
    let resp = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap();
    assert_eq!(resp.content.as_deref(), Some("after the rate limit"));
    assert_eq!(server.hits(), 2, "one 429, one retry that succeeded");
}

#[tokio::test]
async fn transient_5xx_are_retried_until_success() {
    let server = FakeServer::start(|n| match n {
        0 => Reply::Text(503, "upstream overloaded".into()),
        1 => Reply::Text(502, "bad gateway".into()),
        _ => Reply::Json(200, text_completion("third time")),
    })
    .await;
    let resp = model_for(&server, 2)
        .chat(&collections_request("hello"))
        .await
        .unwrap();
    assert_eq!(resp.content.as_deref(), Some("third time"));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn persistent_500_exhausts_the_retries() {
    let server = FakeServer::start(|_| {
        Reply::Json(
            500,
            openai_error(
                "The server had an error while processing your request.",
                "server_error",
                None,
            ),
        )
    })
    .await;
    let err = model_for(&server, 2)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 3, "1 attempt + 2 retries");
    match &err {
        LlmError::Http {
            status,
            attempts,
            message,
            endpoint,
        } => {
            assert_eq!(*status, 500);
            assert_eq!(*attempts, 3);
            assert_eq!(
                message,
                "The server had an error while processing your request."
            );
            assert!(endpoint.ends_with("/v1/chat/completions"));
        }
        other => panic!("expected Http error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("HTTP 500") && text.contains("3 attempt(s)"),
        "{text}"
    );
}

#[tokio::test]
async fn persistent_429_is_reported_as_rate_limited() {
    let server = FakeServer::start(|_| {
        Reply::WithHeader(
            "retry-after",
            "0".into(),
            Box::new(Reply::Json(
                429,
                openai_error(
                    "Rate limit reached",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
            )),
        )
    })
    .await;
    let err = model_for(&server, 2)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 3);
    assert!(
        matches!(&err, LlmError::RateLimited { attempts: 3, message, .. } if message == "Rate limit reached"),
        "{err:?}"
    );
    assert!(err.to_string().contains("rate limited"), "{err}");
}

#[tokio::test]
async fn insufficient_quota_429_is_not_retried() {
    let server = FakeServer::start(|_| {
        Reply::Json(
            429,
            openai_error(
                "You exceeded your current quota",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        )
    })
    .await;
    let err = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1);
    assert!(
        matches!(
            &err,
            LlmError::Http {
                status: 429,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("out of quota"), "{err}");
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_yields_a_timeout_error() {
    let server = FakeServer::start(|_| {
        Reply::Delay(
            Duration::from_secs(3),
            Box::new(Reply::Json(200, text_completion("too late"))),
        )
    })
    .await;
    let config = config_for(&server, 1).with_timeout(Duration::from_millis(100));
    let model = OpenAiModel::new(config).unwrap();
    let started = Instant::now();
    let err = model.chat(&collections_request("hello")).await.unwrap_err();
    let elapsed = started.elapsed();

    assert!(
        matches!(&err, LlmError::Timeout { attempts: 2, timeout, .. } if *timeout == Duration::from_millis(100)),
        "{err:?}"
    );
    assert_eq!(server.hits(), 2, "the timeout is retried once");
    assert!(
        elapsed < Duration::from_secs(2),
        "gave up late: {elapsed:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let server = FakeServer::start(|_| {
        Reply::Json(
            400,
            openai_error(
                "Invalid schema for function 'log_promise'",
                "invalid_request_error",
                None,
            ),
        )
    })
    .await;
    let err = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1, "a 400 must fail at once");
    assert_eq!(
        err,
        LlmError::Http {
            endpoint: format!("{}/chat/completions", server.base_url),
            status: 400,
            attempts: 1,
            message: "Invalid schema for function 'log_promise'".into(),
        }
    );
}

#[tokio::test]
async fn a_401_is_not_retried_and_points_at_the_key() {
    let server = FakeServer::start(|_| {
        Reply::Json(
            401,
            openai_error(
                "Incorrect API key provided",
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
        )
    })
    .await;
    let err = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1);
    let text = err.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("ARGENT_LLM_API_KEY"),
        "{text}"
    );
}

#[tokio::test]
async fn a_plain_text_404_from_a_local_server_keeps_its_status() {
    // Ollama / llama.cpp answer a wrong path with a plain-text 404.
    let server = FakeServer::start(|_| Reply::Text(404, "404 page not found".into())).await;
    let err = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1);
    assert!(
        matches!(&err, LlmError::Http { status: 404, message, .. } if message == "404 page not found"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ARGENT_LLM_BASE_URL"), "{err}");
}

#[tokio::test]
async fn a_success_body_that_is_not_a_completion_is_an_invalid_response() {
    let server = FakeServer::start(|_| Reply::Json(200, json!({"hello": "world"}))).await;
    let err = model_for(&server, 3)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1, "an invalid body is not retried");
    assert!(
        matches!(&err, LlmError::InvalidResponse { message, .. } if message.contains("hello")),
        "{err:?}"
    );

    let server = FakeServer::start(|_| {
        Reply::Json(200, json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}))
    })
    .await;
    let err = model_for(&server, 0)
        .chat(&collections_request("hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidResponse { message, .. } if message.contains("no choices")),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_usage_is_estimated_with_tiktoken() {
    let server = FakeServer::start(|_| {
        let mut body = text_completion("Thanks, noted.");
        body.as_object_mut().unwrap().remove("usage");
        Reply::Json(200, body)
    })
    .await;
    let req = collections_request("We will pay next week.");
    let resp = model_for(&server, 0).chat(&req).await.unwrap();
    let counter = TokenCounter::for_model("gpt-4o-mini");
    assert_eq!(
        resp.usage.prompt_tokens as usize,
        counter.count_request(&req)
    );
    assert_eq!(
        resp.usage.completion_tokens as usize,
        counter.count_text("Thanks, noted.")
    );
    assert!(resp.usage.prompt_tokens > 50);
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    let server = FakeServer::start(|_| Reply::Json(200, text_completion("local"))).await;
    let mut config = config_for(&server, 0);
    config.api_key = None;
    OpenAiModel::new(config)
        .unwrap()
        .chat(&collections_request("hello"))
        .await
        .unwrap();
    assert_eq!(server.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn azure_deployments_use_their_path_query_and_api_key_header() {
    let server = FakeServer::start(|_| Reply::Json(200, text_completion("from azure"))).await;
    let config = OpenAiConfig::new("gpt-4o")
        .with_base_url(&server.root)
        .with_api_key("az-secret")
        .with_azure("prod-4o", "2024-10-21")
        .with_retry(RetryPolicy::none());
    let model = OpenAiModel::new(config).unwrap();
    let resp = model.chat(&collections_request("hello")).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("from azure"));

    let r = &server.received()[0];
    assert_eq!(r.path, "/openai/deployments/prod-4o/chat/completions");
    assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(r.header("api-key").as_deref(), Some("az-secret"));
    assert_eq!(r.header("authorization"), None);
    assert!(model.name().contains("Azure deployment prod-4o"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error_after_retries() {
    // Reserve a loopback port, then free it so nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = OpenAiConfig::new("gpt-4o-mini")
        .with_base_url(format!("http://127.0.0.1:{port}/v1"))
        .with_timeout(Duration::from_secs(2))
        .with_retry(RetryPolicy::new(
            1,
            Duration::from_millis(1),
            Duration::from_millis(2),
        ));
    let err = OpenAiModel::new(config)
        .unwrap()
        .chat(&ChatRequest::new(vec![ChatMessage::user("hi")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Transport { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("could not reach"), "{err}");
}
