//! Canary analysis on the load balancer's own counters (a fleet's
//! [`infra_provider_sdk::Fleet::totals`]): every `interval`,
//! the canary pool's answers since the last reading are judged against
//! the bounds — a 5xx rate, a p99 latency. Too few requests is
//! inconclusive, never a pass.

use std::time::Duration;

use infra_provider_sdk::{BoxFuture, PoolTotals};

pub use super::strategy::{Analysis, Query};
pub use infra_provider_local::prometheus::query::Answer;

/// How long one PromQL query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the analysis asks its PromQL queries: [`PrometheusApi`], or a
/// fake in the executor's tests.
pub trait Queries: Send + Sync {
    /// One instant query: a number, nothing, or why it could not be asked.
    fn instant<'a>(&'a self, url: &'a str, expr: &'a str) -> BoxFuture<'a, Result<Answer, String>>;
}

/// The Prometheus HTTP API (`GET /api/v1/query`).
pub struct PrometheusApi;

impl Queries for PrometheusApi {
    fn instant<'a>(&'a self, url: &'a str, expr: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(infra_provider_local::prometheus::query::instant(
            url,
            expr,
            QUERY_TIMEOUT,
        ))
    }
}

/// What one reading says.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within every bound: the readings, for people.
    Pass(String),
    /// The bound breached: the metric, its value and the bound.
    Fail(String),
    /// Why it cannot say.
    Inconclusive(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Pass(readings) => write!(f, "passed: {readings}"),
            Verdict::Fail(why) => write!(f, "failed: {why}"),
            Verdict::Inconclusive(why) => write!(f, "inconclusive: {why}"),
        }
    }
}

/// The bounds as `plan` shows them: "analysis every 2s: error rate ≤ 0.05,
/// p99 ≤ 500ms, at least 10 requests a reading; aborts at 1 failed
/// reading, past 3 inconclusive or 4 unreadable in a row".
impl std::fmt::Display for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bounds = Vec::new();
        if let Some(rate) = self.max_error_rate {
            bounds.push(format!("error rate ≤ {rate}"));
        }
        if let Some(p50) = self.max_p50_latency {
            bounds.push(format!("p50 ≤ {p50:?}"));
        }
        if let Some(p99) = self.max_p99_latency {
            bounds.push(format!("p99 ≤ {p99:?}"));
        }
        for query in &self.queries {
            bounds.push(query.to_string());
        }
        if bounds.is_empty() {
            bounds.push("requests answered".into());
        }
        write!(
            f,
            "analysis every {:?}: {}, at least {} requests a reading; aborts at {} failed reading(s), past {} inconclusive or {} unreadable in a row",
            self.interval,
            bounds.join(", "),
            self.min_requests,
            self.failure_limit.max(1),
            self.inconclusive_limit,
            self.consecutive_error_limit
        )
    }
}

/// `query error_rate ≤ 0.01` (or `≥ min`, or `in [min, max]`).
impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(min), Some(max)) => write!(f, "query {} in [{min}, {max}]", self.name),
            (None, Some(max)) => write!(f, "query {} ≤ {max}", self.name),
            (Some(min), None) => write!(f, "query {} ≥ {min}", self.name),
            (None, None) => write!(f, "query {}", self.name),
        }
    }
}

impl Query {
    /// Judges what the query returned: a number within the bounds passes;
    /// an empty vector or NaN is inconclusive (no data is not a pass).
    pub fn judge(&self, answer: &Answer) -> Verdict {
        let value = match answer {
            Answer::Empty => {
                return Verdict::Inconclusive(format!(
                    "query {} returned an empty vector (no data)",
                    self.name
                ));
            }
            Answer::Many(n) => {
                return Verdict::Inconclusive(format!(
                    "query {} returned {n} series, not one number: aggregate it (e.g. sum(…))",
                    self.name
                ));
            }
            Answer::Value(value) if value.is_nan() => {
                return Verdict::Inconclusive(format!(
                    "query {} returned NaN (no data, e.g. 0/0)",
                    self.name
                ));
            }
            Answer::Value(value) => *value,
        };
        if let Some(max) = self.max
            && value > max
        {
            return Verdict::Fail(format!("query {} = {value} is above max {max}", self.name));
        }
        if let Some(min) = self.min
            && value < min
        {
            return Verdict::Fail(format!("query {} = {value} is below min {min}", self.name));
        }
        Verdict::Pass(format!("{} = {value}", self.name))
    }
}

/// One reading's verdict from the load balancer's and the queries': a
/// failure wins, then inconclusive; a pass only when all passed.
pub fn combine(verdicts: Vec<Verdict>) -> Verdict {
    let mut passed = Vec::new();
    let mut inconclusive = None;
    for verdict in verdicts {
        match verdict {
            Verdict::Fail(why) => return Verdict::Fail(why),
            Verdict::Inconclusive(why) => {
                inconclusive.get_or_insert(why);
            }
            Verdict::Pass(readings) => passed.push(readings),
        }
    }
    match inconclusive {
        Some(why) => Verdict::Inconclusive(why),
        None => Verdict::Pass(passed.join(", ")),
    }
}

impl Analysis {
    /// Judges the answers between two readings of the canary pool.
    pub fn judge(&self, before: &PoolTotals, after: &PoolTotals) -> Verdict {
        let requests = after.requests.saturating_sub(before.requests);
        if requests == 0 || requests < self.min_requests {
            return Verdict::Inconclusive(format!(
                "{requests} requests in the interval, fewer than min_requests ({})",
                self.min_requests
            ));
        }
        let errors = after.errors.saturating_sub(before.errors);
        let rate = errors as f64 / requests as f64;
        if let Some(max) = self.max_error_rate
            && rate > max
        {
            return Verdict::Fail(format!(
                "error rate {rate:.3} ({errors} of {requests} answers 5xx) is above max_error_rate {max}"
            ));
        }
        let mut readings = format!("error rate {rate:.3} over {requests} requests");
        for (percent, bound) in [(50, self.max_p50_latency), (99, self.max_p99_latency)] {
            let Some(max) = bound else { continue };
            match quantile(before, after, percent) {
                Some(latency) if latency <= max => {
                    readings.push_str(&format!(", p{percent} ≤ {latency:?}"));
                }
                Some(latency) => {
                    return Verdict::Fail(format!(
                        "p{percent} latency ≤ {latency:?} (histogram bucket) is above max_p{percent}_latency {max:?}"
                    ));
                }
                None => {
                    return Verdict::Fail(format!(
                        "p{percent} latency above the histogram's last bucket, above max_p{percent}_latency {max:?}"
                    ));
                }
            }
        }
        Verdict::Pass(readings)
    }
}

/// The upper bound of the bucket that holds the `percent`th percentile of
/// the answers between two readings; `None` beyond the last bucket.
fn quantile(before: &PoolTotals, after: &PoolTotals, percent: u64) -> Option<Duration> {
    let timed = after.timed.saturating_sub(before.timed);
    let wanted = (timed * percent).div_ceil(100);
    after
        .latency
        .iter()
        .zip(
            before
                .latency
                .iter()
                .map(|(_, n)| *n)
                .chain(std::iter::repeat(0)),
        )
        .find(|((_, cumulative), earlier)| cumulative.saturating_sub(*earlier) >= wanted)
        .map(|((bound, _), _)| Duration::from_secs_f64(*bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, errors: u64, fast: u64) -> PoolTotals {
        PoolTotals {
            requests,
            errors,
            // 10 ms or less, then 1 s or less.
            latency: vec![(0.01, fast), (1.0, requests)],
            timed: requests,
        }
    }

    fn rules() -> Analysis {
        Analysis {
            interval: Duration::from_secs(1),
            failure_limit: 1,
            inconclusive_limit: 3,
            consecutive_error_limit: 4,
            min_requests: 10,
            max_error_rate: Some(0.05),
            max_p50_latency: None,
            max_p99_latency: Some(Duration::from_millis(100)),
            queries: Vec::new(),
        }
    }

    #[test]
    fn too_few_requests_are_inconclusive_never_a_pass() {
        let verdict = rules().judge(&totals(100, 0, 100), &totals(105, 0, 105));
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
        let verdict = rules().judge(&totals(100, 0, 100), &totals(100, 0, 100));
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
    }

    #[test]
    fn the_error_rate_of_the_interval_is_judged_not_the_total() {
        // 50 errors before; 2 of the next 100: 2%, under 5%.
        assert_eq!(
            rules().judge(&totals(100, 50, 100), &totals(200, 52, 200)),
            Verdict::Pass("error rate 0.020 over 100 requests, p99 ≤ 10ms".into())
        );
        let Verdict::Fail(why) = rules().judge(&totals(100, 0, 100), &totals(200, 10, 200)) else {
            panic!("10% must fail");
        };
        assert!(why.contains("error rate 0.100"), "{why}");
        assert!(why.contains("max_error_rate 0.05"), "{why}");
    }

    #[test]
    fn p99_comes_from_the_buckets_of_the_interval() {
        // Of the next 100 answers, 98 fast and 2 slow: p99 in the 1 s bucket.
        let Verdict::Fail(why) = rules().judge(&totals(100, 0, 100), &totals(200, 0, 198)) else {
            panic!("a slow p99 must fail");
        };
        assert!(why.contains("p99"), "{why}");
        // 100 fast: p99 ≤ 10 ms.
        assert_eq!(
            rules().judge(&totals(100, 0, 0), &totals(200, 0, 100)),
            Verdict::Pass("error rate 0.000 over 100 requests, p99 ≤ 10ms".into())
        );
    }

    #[test]
    fn the_median_has_its_own_bound() {
        let mut rules = rules();
        rules.max_p50_latency = Some(Duration::from_millis(5));
        // 100 answers in the interval, all in the 10 ms bucket: p50 ≤ 10ms.
        let Verdict::Fail(why) = rules.judge(&totals(100, 0, 0), &totals(200, 0, 100)) else {
            panic!("a slow median must fail");
        };
        assert!(why.contains("p50 latency ≤ 10ms"), "{why}");
        assert!(why.contains("max_p50_latency 5ms"), "{why}");
        rules.max_p50_latency = Some(Duration::from_millis(10));
        assert_eq!(
            rules.judge(&totals(100, 0, 0), &totals(200, 0, 100)),
            Verdict::Pass("error rate 0.000 over 100 requests, p50 ≤ 10ms, p99 ≤ 10ms".into())
        );
    }
}
