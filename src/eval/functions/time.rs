//! Time functions on RFC 3339 timestamps (`2026-11-30T12:00:00Z`), and the
//! values that change on every run: `timestamp()` and `uuid()` are unknown
//! while planning and known during apply, as in Terraform.

use super::*;

/// A moment: seconds since the Unix epoch (UTC), nanoseconds, and the
/// offset from UTC it was written with, in minutes.
struct Moment {
    seconds: i64,
    nanos: u32,
    offset_minutes: i32,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parse_timestamp(args: &[Value], index: usize) -> Result<Moment, FunctionError> {
    let text = string(args, index)?;
    let invalid = || {
        FunctionError::at(index, format!("`{text}` is not an RFC 3339 timestamp"))
            .help("write e.g. \"2026-11-30T12:00:00Z\" or \"2026-11-30T13:00:00+01:00\"")
    };
    let bytes = text.as_bytes();
    let digits = |from: usize, count: usize| -> Option<i64> {
        let part = text.get(from..from + count)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let at = |position: usize, byte: u8| bytes.get(position) == Some(&byte);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0, 4),
        digits(5, 2),
        digits(8, 2),
        digits(11, 2),
        digits(14, 2),
        digits(17, 2),
    ) else {
        return Err(invalid());
    };
    if !(at(4, b'-')
        && at(7, b'-')
        && (at(10, b'T') || at(10, b't'))
        && at(13, b':')
        && at(16, b':'))
    {
        return Err(invalid());
    }
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(invalid()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(invalid());
    }
    let mut cursor = 19;
    let mut nanos = 0u32;
    if at(cursor, b'.') {
        cursor += 1;
        let start = cursor;
        while bytes.get(cursor).is_some_and(u8::is_ascii_digit) {
            cursor += 1;
        }
        let fraction = &text[start..cursor];
        if fraction.is_empty() || fraction.len() > 9 {
            return Err(invalid());
        }
        nanos = format!("{fraction:0<9}").parse().map_err(|_| invalid())?;
    }
    let offset_minutes = match text.get(cursor..) {
        Some("Z" | "z") => 0,
        Some(offset)
            if offset.len() == 6 && (offset.starts_with('+') || offset.starts_with('-')) =>
        {
            let (Some(hours), Some(minutes)) = (digits(cursor + 1, 2), digits(cursor + 4, 2))
            else {
                return Err(invalid());
            };
            if !at(cursor + 3, b':') || hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes) as i32
        }
        _ => return Err(invalid()),
    };
    let local = days_from_civil(year, month as u32, day as u32) * 86_400
        + hour * 3600
        + minute * 60
        + second;
    Ok(Moment {
        seconds: local - i64::from(offset_minutes) * 60,
        nanos,
        offset_minutes,
    })
}

/// The civil fields of a moment in its own offset: year, month, day, hour,
/// minute, second, day of the week (0 = Sunday).
fn fields(moment: &Moment) -> (i64, u32, u32, u32, u32, u32, u32) {
    let local = moment.seconds + i64::from(moment.offset_minutes) * 60;
    let days = local.div_euclid(86_400);
    let of_day = local.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        year,
        month,
        day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        weekday,
    )
}

fn offset_text(minutes: i32, colon: bool) -> String {
    if minutes == 0 && colon {
        return "Z".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let minutes = minutes.unsigned_abs();
    let separator = if colon { ":" } else { "" };
    format!("{sign}{:02}{separator}{:02}", minutes / 60, minutes % 60)
}

fn rfc3339(moment: &Moment) -> String {
    let (year, month, day, hour, minute, second, _) = fields(moment);
    let fraction = if moment.nanos == 0 {
        String::new()
    } else {
        format!(".{:09}", moment.nanos)
            .trim_end_matches('0')
            .to_string()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{}",
        offset_text(moment.offset_minutes, true)
    )
}

/// Now, in UTC; unknown while planning.
pub(super) fn timestamp(_: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    if !context.applying {
        return Ok(Value::Unknown);
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Value::string(rfc3339(&Moment {
        seconds: since.as_secs() as i64,
        nanos: 0,
        offset_minutes: 0,
    })))
}

/// A random version 4 UUID; unknown while planning.
pub(super) fn uuid(_: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    if !context.applying {
        return Ok(Value::Unknown);
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| FunctionError::new("no random numbers available"))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    Ok(Value::string(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )))
}

/// A Go duration (`"1h30m"`, `"-10s"`, `"1.5h"`, `"250ms"`) in nanoseconds.
fn parse_duration(args: &[Value], index: usize) -> Result<i128, FunctionError> {
    let text = string(args, index)?;
    let invalid = || {
        FunctionError::at(index, format!("`{text}` is not a duration")).help(
            "write a number and a unit, e.g. \"90s\", \"1h30m\", \"-24h\" (units: ns us ms s m h)",
        )
    };
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += number * nanos_per;
        rest = &rest[unit_end..];
    }
    if total > 1e27 {
        return Err(invalid());
    }
    Ok(sign * total.round() as i128)
}

/// A timestamp moved by a duration, in the timestamp's offset.
pub(super) fn timeadd(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let moment = parse_timestamp(args, 0)?;
    let shift = parse_duration(args, 1)?;
    let nanos = i128::from(moment.seconds) * 1_000_000_000 + i128::from(moment.nanos) + shift;
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000))
        .map_err(|_| FunctionError::at(1, "the result is out of range"))?;
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) {
        return Err(FunctionError::at(
            1,
            "the result is outside the years 1 to 9999",
        ));
    }
    Ok(Value::string(rfc3339(&Moment {
        seconds,
        nanos: nanos.rem_euclid(1_000_000_000) as u32,
        offset_minutes: moment.offset_minutes,
    })))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A timestamp written with Terraform's `formatdate` specification:
/// `YYYY YY MMMM MMM MM M DD D EEEE EEE hh h HH H AA aa mm m ss s ZZZZZ
/// ZZZZ ZZZ Z`, and literal text between single quotes.
pub(super) fn formatdate(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let spec = string(args, 0)?;
    let moment = parse_timestamp(args, 1)?;
    let (year, month, day, hour, minute, second, weekday) = fields(&moment);
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c == '\'' {
            // 'literal', with '' for a quote.
            let mut end = at + 1;
            let mut text = String::new();
            loop {
                match chars.get(end) {
                    None => {
                        return Err(FunctionError::at(0, "a quoted literal is not closed")
                            .help("close it with `'`; write `''` for a quote"));
                    }
                    Some('\'') if chars.get(end + 1) == Some(&'\'') => {
                        text.push('\'');
                        end += 2;
                    }
                    Some('\'') => break,
                    Some(other) => {
                        text.push(*other);
                        end += 1;
                    }
                }
            }
            out.push_str(if text.is_empty() { "'" } else { &text });
            at = end + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            at += 1;
            continue;
        }
        let mut run = 1;
        while chars.get(at + run) == Some(&c) {
            run += 1;
        }
        let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
        let text = match (c, run) {
            ('Y', 4) => format!("{year:04}"),
            ('Y', 2) => format!("{:02}", year.rem_euclid(100)),
            ('M', 4) => MONTHS[month as usize - 1].to_string(),
            ('M', 3) => MONTHS[month as usize - 1][..3].to_string(),
            ('M', 2) => format!("{month:02}"),
            ('M', 1) => month.to_string(),
            ('D', 2) => format!("{day:02}"),
            ('D', 1) => day.to_string(),
            ('E', 4) => WEEKDAYS[weekday as usize].to_string(),
            ('E', 3) => WEEKDAYS[weekday as usize][..3].to_string(),
            ('h', 2) => format!("{hour:02}"),
            ('h', 1) => hour.to_string(),
            ('H', 2) => format!("{hour12:02}"),
            ('H', 1) => hour12.to_string(),
            ('A', 2) => (if hour < 12 { "AM" } else { "PM" }).to_string(),
            ('a', 2) => (if hour < 12 { "am" } else { "pm" }).to_string(),
            ('m', 2) => format!("{minute:02}"),
            ('m', 1) => minute.to_string(),
            ('s', 2) => format!("{second:02}"),
            ('s', 1) => second.to_string(),
            ('Z', 5) => offset_text(moment.offset_minutes, true).replace('Z', "+00:00"),
            ('Z', 4) => offset_text(moment.offset_minutes, false),
            ('Z', 3) if moment.offset_minutes == 0 => "UTC".to_string(),
            ('Z', 3) => offset_text(moment.offset_minutes, false),
            ('Z', 1) => offset_text(moment.offset_minutes, true),
            _ => {
                let token: String = std::iter::repeat_n(c, run).collect();
                return Err(
                    FunctionError::at(0, format!("`{token}` is not a formatdate token")).help(
                        "use e.g. \"YYYY-MM-DD hh:mm\"; quote literal letters: \"'at' hh:mm\"",
                    ),
                );
            }
        };
        out.push_str(&text);
        at += run;
    }
    Ok(Value::string(out))
}
