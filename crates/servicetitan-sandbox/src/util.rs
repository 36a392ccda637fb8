//! Small pure helpers: dates without a calendar crate, deterministic hashing, glob matching.

/// A fast, well-mixed 64-bit hash (SplitMix64's finaliser): the source of all generated data,
/// so the same seed always gives the same records.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Hash of several values, order-sensitive.
pub fn mix_all(values: &[u64]) -> u64 {
    values.iter().fold(0x5EED, |acc, v| mix(acc ^ v))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds as the service writes date-times: `2026-01-02T03:04:05.678Z`.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    Rfc3339Ms(unix_ms).to_string()
}

/// Displays Unix milliseconds as [`format_rfc3339_ms`] does, without allocating: generated
/// records carry two dates each.
pub struct Rfc3339Ms(pub i64);

impl std::fmt::Display for Rfc3339Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        if !(0..=9999).contains(&y) {
            let sod = secs.rem_euclid(86_400);
            return write!(
                f,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                sod / 3600,
                (sod % 3600) / 60,
                sod % 60
            );
        }
        let sod = secs.rem_euclid(86_400) as u32;
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let mut digits = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        digits(0, 4, y as u32);
        digits(5, 2, mo);
        digits(8, 2, d);
        digits(11, 2, sod / 3600);
        digits(14, 2, (sod % 3600) / 60);
        digits(17, 2, sod % 60);
        digits(20, 3, ms as u32);
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}

/// Parses `YYYY-MM-DD` or an RFC 3339 date-time (`Z` or `±hh:mm`, optional fraction) into Unix
/// milliseconds. A date-time without an offset is taken as UTC, as the service does.
pub fn parse_date_ms(text: &str) -> Option<i64> {
    let s = text.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + se) * 1000;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let millis: String = frac[..digits].chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    match rest {
        "" | "Z" | "z" => Some(ms),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let off = &rest[1..];
            if off.len() != 5 || off.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i64 = off[..2].parse().ok()?;
            let om: i64 = off[3..].parse().ok()?;
            Some(ms - sign * (oh * 3600 + om * 60) * 1000)
        }
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `*` matches any run of characters (slashes included); everything else matches itself,
/// ASCII case-insensitively, as URL paths of the service are.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The current time as Unix milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for ms in [0_i64, 951_782_400_000, 1_704_067_200_123, 4_102_444_800_000] {
            assert_eq!(parse_date_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(format_rfc3339_ms(1_704_067_200_000), "2024-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(parse_date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_date_ms("2024-01-01T01:00:00+01:00"), Some(1_704_067_200_000));
        assert_eq!(parse_date_ms("2024-01-01T00:00:00"), Some(1_704_067_200_000));
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in
            ["", "2024", "2023-02-29", "2024-13-01", "2024-01-01T25:00:00Z", "yesterday", "2024-01-01T00:00:00+0100"]
        {
            assert_eq!(parse_date_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("crm/v2/tenant/*/customers*", "crm/v2/tenant/1001/customers"));
        assert!(glob_match("crm/v2/tenant/*/customers*", "crm/v2/tenant/1001/customers/5"));
        assert!(!glob_match("crm/v2/tenant/*/customers*", "jpm/v2/tenant/1001/jobs"));
        assert!(glob_match("*", "connect/token"));
        assert!(glob_match("connect/token", "Connect/Token"));
        assert!(!glob_match("connect/token", "connect/tokens"));
    }
}
