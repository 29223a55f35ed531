//! A target group's counters from the load balancer's CloudWatch metrics
//! (namespace `AWS/ApplicationELB`, one `GetMetricData` call): the sums of
//! `RequestCount` and `HTTPCode_Target_5XX_Count` from a fixed start, so
//! that a rollout's analysis, which subtracts two readings, sees the
//! answers given between them.
//!
//! CloudWatch publishes ALB metrics a minute at a time, a minute or so
//! late: an analysis `interval` of a few minutes reads whole minutes.
//! Latencies (`TargetResponseTime`) are averages and percentiles there,
//! not the histogram `PoolTotals` holds; latency bounds are not read on
//! AWS (the engine says so at validate).

use std::time::SystemTime;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use infra_provider_sdk::{PoolTotals, ProviderError};

use crate::api::Api;

/// The `TargetGroup` and `LoadBalancer` dimension values CloudWatch uses:
/// the ARNs' last parts (`targetgroup/web/0123…`, `app/web/4567…`).
pub fn dimensions(load_balancer_arn: &str, target_group_arn: &str) -> (String, String) {
    let target_group = target_group_arn
        .rsplit(':')
        .next()
        .unwrap_or(target_group_arn)
        .to_string();
    let load_balancer = load_balancer_arn
        .split_once(":loadbalancer/")
        .map_or(load_balancer_arn, |(_, rest)| rest)
        .to_string();
    (target_group, load_balancer)
}

fn query(id: &str, name: &str, target_group: &str, load_balancer: &str) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace("AWS/ApplicationELB")
        .metric_name(name)
        .dimensions(
            Dimension::builder()
                .name("TargetGroup")
                .value(target_group)
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("LoadBalancer")
                .value(load_balancer)
                .build(),
        )
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(60)
                .stat("Sum")
                .build(),
        )
        .return_data(true)
        .build()
}

/// The target group's answers since `from`.
pub async fn pool_totals(
    api: &Api,
    load_balancer_arn: &str,
    target_group_arn: &str,
    from: SystemTime,
) -> Result<PoolTotals, ProviderError> {
    if load_balancer_arn.is_empty() {
        return Err(ProviderError::new(
            "the deployment's listener has not been read: no load balancer to read metrics of",
        ));
    }
    let (target_group, load_balancer) = dimensions(load_balancer_arn, target_group_arn);
    let until = SystemTime::now() + std::time::Duration::from_secs(60);
    let mut requests = 0.0;
    let mut errors = 0.0;
    let mut token: Option<String> = None;
    loop {
        let answer = api
            .call(
                "GetMetricData",
                api.cloudwatch
                    .get_metric_data()
                    .metric_data_queries(query(
                        "requests",
                        "RequestCount",
                        &target_group,
                        &load_balancer,
                    ))
                    .metric_data_queries(query(
                        "errors",
                        "HTTPCode_Target_5XX_Count",
                        &target_group,
                        &load_balancer,
                    ))
                    .start_time(DateTime::from(from))
                    .end_time(DateTime::from(until))
                    .set_next_token(token.clone())
                    .send(),
            )
            .await?;
        for result in answer.metric_data_results() {
            let sum: f64 = result.values().iter().sum();
            match result.id() {
                Some("requests") => requests += sum,
                Some("errors") => errors += sum,
                _ => {}
            }
        }
        token = answer.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(PoolTotals {
        requests: requests.max(0.0) as u64,
        errors: errors.max(0.0) as u64,
        latency: Vec::new(),
        timed: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_the_arns_last_parts() {
        let (tg, lb) = dimensions(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/73e2d6bc24d8a067",
        );
        assert_eq!(tg, "targetgroup/blue/73e2d6bc24d8a067");
        assert_eq!(lb, "app/web/50dc6c495c0c9188");
    }
}
