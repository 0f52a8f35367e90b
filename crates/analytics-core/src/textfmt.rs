//! Allocation-light text formatting for values written into jsonb many thousands of times per call (timestamps
//! and uuids of every span in a trace tree). Plain Rust, tested against chrono.

/// RFC 3339 UTC text with microseconds, e.g. `2026-11-20T09:00:00.250000Z`, of microseconds since the Unix epoch.
pub fn rfc3339_micros(unix_us: i64) -> String {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return chrono::DateTime::from_timestamp_micros(unix_us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
    }
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for k in (at..at + width).rev() {
            b[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 6, micros);
    String::from_utf8(b.to_vec()).expect("ASCII digits")
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The canonical text of a uuid given as its 16 bytes.
pub fn uuid_text(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(36);
    for (i, &byte) in bytes.iter().take(16).enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 15) as usize]);
    }
    String::from_utf8(out).expect("ASCII hex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        let chrono_fmt = |us: i64| {
            chrono::DateTime::from_timestamp_micros(us).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let samples = [
            0i64,
            1,
            -1,
            951_782_400_000_000,       // 2000-02-29
            1_763_629_200_250_000,     // 2026-11-20T09:00:00.25
            4_102_444_799_999_999,     // 2099-12-31T23:59:59.999999
            -62_135_596_800_000_000,   // 0001-01-01
            253_402_300_799_999_999,   // 9999-12-31T23:59:59.999999
        ];
        for us in samples {
            assert_eq!(rfc3339_micros(us), chrono_fmt(us), "{us}");
        }
        // every day over four centuries, at an odd time of day
        for day in (-146_097 * 2..146_097 * 2).step_by(7) {
            let us = day * 86_400_000_000 + 45_296_789_012;
            assert_eq!(rfc3339_micros(us), chrono_fmt(us));
        }
    }

    #[test]
    fn uuids_are_canonical_lowercase() {
        let bytes: Vec<u8> = (0u8..16).map(|i| i * 17).collect();
        assert_eq!(uuid_text(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
    }
}
