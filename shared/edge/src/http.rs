//! The request and response every HTTP handler works with, and the JSON error contract:
//! every error is `{"error": {"code": "...", "message": "..."}}` with a stable code.

use std::collections::BTreeMap;

use serde::Serialize;

/// A decoded HTTP request. Header names are lower case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub source_ip: String,
    pub request_id: String,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A JSON response.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::with_body(status, "application/json", body),
            Err(e) => Self::error(
                500,
                "internal",
                &format!("response could not be encoded: {e}"),
            ),
        }
    }

    pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".to_owned(), content_type.to_owned());
        Self {
            status,
            headers,
            body,
        }
    }

    /// The error body every Vigie endpoint uses.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::error_with(status, code, message, serde_json::Map::new())
    }

    /// An error body with extra fields next to `code` and `message`.
    pub fn error_with(
        status: u16,
        code: &str,
        message: &str,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let mut detail = extra;
        detail.insert("code".into(), code.into());
        detail.insert("message".into(), message.into());
        Self::json(status, &serde_json::json!({ "error": detail }))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_code_and_message() {
        let r = HttpResponse::error(413, "body_too_large", "too big");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["error"]["code"], "body_too_large");
        assert_eq!(v["error"]["message"], "too big");
    }
}
