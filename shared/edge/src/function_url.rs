//! The Lambda Function URL event (payload format 2.0) and its response.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::http::{HttpRequest, HttpResponse};

/// The request event a Function URL delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlRequest {
    pub version: String,
    pub raw_path: String,
    #[serde(default)]
    pub raw_query_string: String,
    /// Header names arrive lower-cased; repeated headers are joined with commas.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    pub request_context: RequestContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    pub http: HttpContext,
    #[serde(default)]
    pub time_epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub source_ip: String,
    #[serde(default)]
    pub user_agent: String,
}

/// The response a Function URL expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl FunctionUrlRequest {
    /// Builds the event the way Lambda does from a raw HTTP request (used by the local
    /// runtime, so its requests take the same decoding path as on AWS).
    pub fn from_http(req: &HttpRequest, time_epoch: i64) -> Self {
        let user_agent = req.headers.get("user-agent").cloned().unwrap_or_default();
        let (body, is_base64_encoded) = if req.body.is_empty() {
            (None, false)
        } else {
            match std::str::from_utf8(&req.body) {
                Ok(text) if !is_binary(&req.headers) => (Some(text.to_owned()), false),
                _ => (Some(B64.encode(&req.body)), true),
            }
        };
        Self {
            version: "2.0".into(),
            raw_path: req.path.clone(),
            raw_query_string: req.query.clone(),
            headers: req.headers.clone(),
            body,
            is_base64_encoded,
            request_context: RequestContext {
                request_id: req.request_id.clone(),
                http: HttpContext {
                    method: req.method.clone(),
                    path: req.path.clone(),
                    protocol: "HTTP/1.1".into(),
                    source_ip: req.source_ip.clone(),
                    user_agent,
                },
                time_epoch,
            },
        }
    }

    /// Decodes the event, has `handle` answer it, and encodes the answer; a body that is not
    /// valid base64 is answered 400 without reaching the handler.
    pub async fn respond<F, Fut>(self, handle: F) -> FunctionUrlResponse
    where
        F: FnOnce(HttpRequest) -> Fut,
        Fut: std::future::Future<Output = HttpResponse>,
    {
        let response = match self.into_request() {
            Ok(request) => handle(request).await,
            Err(e) => HttpResponse::error(
                400,
                "malformed_body_encoding",
                &format!("the body is not valid base64: {e}"),
            ),
        };
        response.into()
    }

    /// Decodes the event into the request handlers see.
    pub fn into_request(self) -> Result<HttpRequest, base64::DecodeError> {
        let body = match (self.body, self.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(b), true) => B64.decode(b)?,
            (Some(b), false) => b.into_bytes(),
        };
        Ok(HttpRequest {
            method: self.request_context.http.method,
            path: self.raw_path,
            query: self.raw_query_string,
            headers: self.headers,
            body,
            source_ip: self.request_context.http.source_ip,
            request_id: self.request_context.request_id,
        })
    }
}

/// Lambda base64-encodes any body whose content encoding or type is not plain text.
fn is_binary(headers: &BTreeMap<String, String>) -> bool {
    headers
        .get("content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
}

impl From<HttpResponse> for FunctionUrlResponse {
    fn from(r: HttpResponse) -> Self {
        let (body, is_base64_encoded) = match String::from_utf8(r.body) {
            Ok(text) => (text, false),
            Err(e) => (B64.encode(e.into_bytes()), true),
        };
        Self {
            status_code: r.status,
            headers: r.headers,
            body,
            is_base64_encoded,
        }
    }
}

impl FunctionUrlResponse {
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        if self.is_base64_encoded {
            B64.decode(&self.body)
        } else {
            Ok(self.body.clone().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as AWS documents it for Function URLs (payload 2.0), trimmed.
    const FIXTURE: &str = r#"{
      "version": "2.0",
      "routeKey": "$default",
      "rawPath": "/v1/agent/batches",
      "rawQueryString": "",
      "headers": {"content-type": "application/json", "content-encoding": "gzip", "x-vigie-seq": "3"},
      "requestContext": {
        "accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.eu-west-3.on.aws",
        "http": {"method": "POST", "path": "/v1/agent/batches", "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.9", "userAgent": "vigie-agent/0.1.0"},
        "requestId": "r-1", "routeKey": "$default", "stage": "$default", "time": "21/Nov/2026:05:00:00 +0000",
        "timeEpoch": 1795150800000
      },
      "body": "H4sIAAAAAAAA/6tWKk4tykvMTVWyUkpKLFKqBQBEcAn4DwAAAA==",
      "isBase64Encoded": true
    }"#;

    #[test]
    fn decodes_the_documented_event_shape() {
        let ev: FunctionUrlRequest = serde_json::from_str(FIXTURE).expect("parses");
        let req = ev.into_request().expect("base64");
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("x-vigie-seq"), Some("3"));
        assert_eq!(&req.body[..2], &[0x1f, 0x8b], "gzip magic survives base64");
        assert_eq!(req.source_ip, "203.0.113.9");
    }

    #[test]
    fn raw_requests_round_trip_through_the_event() {
        let mut req = HttpRequest {
            method: "POST".into(),
            path: "/p".into(),
            query: "a=1".into(),
            body: vec![0x1f, 0x8b, 0xff, 0x00],
            ..HttpRequest::default()
        };
        req.headers
            .insert("content-encoding".to_owned(), "gzip".to_owned());
        let body = req.body.clone();
        let ev = FunctionUrlRequest::from_http(&req, 0);
        assert!(ev.is_base64_encoded);
        let json = serde_json::to_string(&ev).expect("json");
        let back: FunctionUrlRequest = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.into_request().expect("decodes").body, body);
    }
}
