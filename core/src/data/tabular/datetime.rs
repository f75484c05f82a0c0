//! ISO 8601 dates and date-times, as day numbers (days since 1970-01-01) and hours: what a
//! `kind = "datetime"` column needs, without a date library.

use crate::error::Invalid;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
pub fn weekday(days: i64) -> u32 {
    (days + 3).rem_euclid(7) as u32
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const FORMS: &str = "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD HH:MM:SS";

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD HH:MM:SS` → (day number, hour).
pub fn parse(text: &str) -> Result<(i64, u32), Invalid> {
    let bad = || Invalid::new(format!("{text:?} is not an ISO 8601 date or date-time ({FORMS})"));
    let t = text.trim();
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = t.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() != 10 && b.len() != 19 {
        return Err(bad());
    }
    if b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = match (digits(0..4), digits(5..7), digits(8..10)) {
        (Some(y), Some(m), Some(d)) => (i64::from(y), m, d),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(format!("{text:?} is not a date in the calendar").into());
    }
    let mut hour = 0;
    if b.len() == 19 {
        if !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (h, mi, s) = match (digits(11..13), digits(14..16), digits(17..19)) {
            (Some(h), Some(mi), Some(s)) => (h, mi, s),
            _ => return Err(bad()),
        };
        if h > 23 || mi > 59 || s > 59 {
            return Err(
                format!("{text:?} is not a time of day (hours 0–23, minutes and seconds 0–59)").into()
            );
        }
        hour = h;
    }
    Ok((days_from_civil(y, m, d), hour))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_and_know_the_weekday() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
        assert_eq!(weekday(days_from_civil(2024, 1, 1)), 0, "2024-01-01 was a Monday");
        assert_eq!(weekday(days_from_civil(2024, 1, 7)), 6);
        assert_eq!(weekday(days_from_civil(1969, 12, 31)), 2, "a Wednesday, before the epoch");
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(format_date(days_from_civil(2000, 2, 29)), "2000-02-29");
    }

    #[test]
    fn parses_the_three_forms_and_names_what_is_wrong() {
        let jan1 = days_from_civil(2024, 1, 1);
        assert_eq!(parse("2024-01-01"), Ok((jan1, 0)));
        assert_eq!(parse("2024-01-01T17:04:39"), Ok((jan1, 17)));
        assert_eq!(parse(" 2024-01-02 23:59:59"), Ok((jan1 + 1, 23)));
        assert!(parse("2024-02-30").unwrap_err().contains("not a date in the calendar"));
        assert_eq!(parse("2024-02-29").map(|d| d.0), Ok(jan1 + 59));
        assert!(parse("2023-02-29").is_err());
        assert!(parse("2024-01-01T24:00:00").unwrap_err().contains("time of day"));
        for bad in ["", "2024/01/01", "24-01-01", "2024-01-01T10:00", "2024-1-01", "yesterday"] {
            assert!(parse(bad).unwrap_err().contains("is not an ISO 8601"), "{bad:?}");
        }
    }
}
