//! One PromQL instant query against a Prometheus server's HTTP API
//! (`GET /api/v1/query`), answered as a number, nothing, or why not. The
//! rollout analysis asks it (`query` blocks), as Argo Rollouts and Flagger
//! ask theirs.

use std::time::Duration;

use serde_json::Value;

use crate::runtime::http;

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One number (a scalar, or a vector of one sample).
    Value(f64),
    /// An empty vector: nothing matched (no samples yet, no traffic).
    Empty,
    /// More than one series: the query must aggregate them.
    Many(usize),
}

/// Asks `url` (`http://127.0.0.1:9090`) the query `expr`. An error is the
/// server's own message (a PromQL syntax error) or why it did not answer.
pub async fn instant(url: &str, expr: &str, timeout: Duration) -> Result<Answer, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("`{url}` is not an http:// URL (https is not supported for queries)")
    })?;
    let (addr, prefix) = match rest.split_once('/') {
        Some((addr, prefix)) => (addr, format!("/{}", prefix.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let addr = addr.trim_end_matches('/');
    let path = format!(
        "{}/api/v1/query?query={}",
        prefix.trim_end_matches('/'),
        percent_encode(expr)
    );
    let answer = http::get(addr, &path, timeout)
        .await
        .map_err(|error| format!("Prometheus at {url} does not answer: {error}"))?;
    let body: Value = serde_json::from_slice(&answer.body).map_err(|_| {
        format!(
            "Prometheus at {url} answered {} with something else than its API's JSON",
            answer.status
        )
    })?;
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus refused the query: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    read_result(&body["data"])
}

/// A query's `data`: a scalar `[time, "value"]`, or a vector of samples.
fn read_result(data: &Value) -> Result<Answer, String> {
    let number = |sample: &Value| -> Result<f64, String> {
        sample[1]
            .as_str()
            .and_then(|text| text.parse::<f64>().ok())
            .ok_or_else(|| format!("a sample infra cannot read: {sample}"))
    };
    match data["resultType"].as_str() {
        Some("scalar") => number(&data["result"]).map(Answer::Value),
        Some("vector") => {
            let samples = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            match samples {
                [] => Ok(Answer::Empty),
                [one] => number(&one["value"]).map(Answer::Value),
                many => Ok(Answer::Many(many.len())),
            }
        }
        other => Err(format!(
            "the query returned a {}, not a number: use an instant vector or a scalar",
            other.unwrap_or("nothing")
        )),
    }
}

/// Everything but unreserved characters percent-encoded (RFC 3986).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_one_number_nothing_or_too_many() {
        let vector = |result: Value| json!({ "resultType": "vector", "result": result });
        assert_eq!(
            read_result(&vector(json!([{ "metric": {}, "value": [1.5, "0.25"] }]))),
            Ok(Answer::Value(0.25))
        );
        assert_eq!(read_result(&vector(json!([]))), Ok(Answer::Empty));
        assert_eq!(
            read_result(&vector(json!([
                { "metric": { "a": "1" }, "value": [1, "1"] },
                { "metric": { "a": "2" }, "value": [1, "2"] },
            ]))),
            Ok(Answer::Many(2))
        );
        let nan = read_result(&vector(json!([{ "metric": {}, "value": [1, "NaN"] }])));
        assert!(matches!(nan, Ok(Answer::Value(v)) if v.is_nan()));
        assert_eq!(
            read_result(&json!({ "resultType": "scalar", "result": [1, "3"] })),
            Ok(Answer::Value(3.0))
        );
        assert!(read_result(&json!({ "resultType": "matrix", "result": [] })).is_err());
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("sum(rate(x{code=~\"5..\"}[1m]))"),
            "sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B1m%5D%29%29"
        );
    }
}
