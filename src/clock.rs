//! Times as infra writes them: UTC, RFC 3339 (lock files, progress lines,
//! JSON events).

use std::time::{Duration, SystemTime};

/// `2026-11-30T08:15:02Z`, or with `millis` `2026-11-30T08:15:02.123Z`.
pub fn rfc3339(at: SystemTime, millis: bool) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = if millis {
        format!(".{:03}", since_epoch.subsec_millis())
    } else {
        String::new()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Now, to the second.
pub fn now() -> String {
    rfc3339(SystemTime::now(), false)
}

/// `0.4s`, `12.0s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_026_502_123);
        assert_eq!(rfc3339(at, true), "2026-11-30T08:15:02.123Z");
        assert_eq!(rfc3339(at, false), "2026-11-30T08:15:02Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH, true),
            "1970-01-01T00:00:00.000Z"
        );
        // 2000-02-29: a leap day of a century divisible by 400.
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap, false), "2000-02-29T00:00:00Z");
    }
}
