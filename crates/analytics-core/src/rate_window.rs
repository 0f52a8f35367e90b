//! The exact sliding window of the rate limiter: per owner and action, the times of the calls admitted within the
//! last `per`, oldest first (times in microseconds). A call at time `t` is admitted when fewer than `max_calls`
//! admitted calls lie in the window `(t - per, t]`; the window then keeps those calls and the new one. Times never
//! go backwards: a call is recorded at `max(t, last admitted)` (a clock stepped back, or the test clock), so the
//! window stays sorted and every check below can look at one element instead of counting.
//!
//! `per` is a duration (a rolling window of fixed length), not calendar arithmetic: `1 day` is 86,400 s even across
//! a daylight-saving change, as `window_seconds` reports it.

/// Microseconds in a day, for a window given in days.
const DAY_US: i64 = 86_400_000_000;

/// The length in microseconds of a window written as an interval (months, days, microseconds), a month counted as
/// 30 days as Postgres compares intervals (analytics.rate_limits allows at most one day; an interval beyond the
/// range of microseconds, which only a direct call can give, counts as the longest one).
pub fn window_us(months: i32, days: i32, micros: i64) -> i64 {
    (i64::from(months) * 30 + i64::from(days)).saturating_mul(DAY_US).saturating_add(micros)
}

/// The time a call at `t` is recorded at: `t`, or the last admitted time when the clock is behind it.
pub fn call_time(admitted: &[i64], t: i64) -> i64 {
    admitted.last().map_or(t, |&last| last.max(t))
}

/// How many admitted calls lie in the window ending at the call's time.
pub fn used(admitted: &[i64], t: i64, per_us: i64) -> usize {
    let t = call_time(admitted, t);
    admitted.len() - admitted.partition_point(|&x| x <= t.saturating_sub(per_us))
}

/// Whether a call at `t` may be admitted under `max_calls` per window: the `max_calls`-th newest admission (if any)
/// has left the window. One comparison: the times are sorted.
pub fn has_room(admitted: &[i64], t: i64, per_us: i64, max_calls: i64) -> bool {
    if max_calls <= 0 {
        return false;
    }
    let n = admitted.len() as i64;
    if n < max_calls {
        return true;
    }
    admitted[(n - max_calls) as usize] <= call_time(admitted, t).saturating_sub(per_us)
}

/// The window after admitting a call at `t`: the admitted calls still inside it, then the call's time.
pub fn admit(admitted: &[i64], t: i64, per_us: i64) -> Vec<i64> {
    let t = call_time(admitted, t);
    let first = admitted.partition_point(|&x| x <= t.saturating_sub(per_us));
    let mut window = Vec::with_capacity(admitted.len() - first + 1);
    window.extend_from_slice(&admitted[first..]);
    window.push(t);
    window
}

/// Whole seconds (rounded up, at least 1) until a call refused at `t` would be admitted: when the admission that
/// keeps the window full leaves it. 0 when there is room now.
pub fn retry_after_seconds(admitted: &[i64], t: i64, per_us: i64, max_calls: i64) -> i64 {
    if max_calls <= 0 {
        // no call is ever admitted (analytics.rate_limits allows 1 to 100,000; the binding refuses less)
        return i64::MAX;
    }
    if has_room(admitted, t, per_us, max_calls) {
        return 0;
    }
    let n = admitted.len() as i64;
    // the window must drop to max_calls - 1 calls: the max_calls-th newest admission has to leave it
    let leaving = admitted[(n - max_calls) as usize];
    let wait_us = leaving.saturating_add(per_us).saturating_sub(call_time(admitted, t));
    (wait_us.saturating_add(999_999).div_euclid(1_000_000)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    /// The window by counting, as a reference for the one-comparison checks.
    fn counted(admitted: &[i64], t: i64, per: i64) -> usize {
        let t = call_time(admitted, t);
        admitted.iter().filter(|&&x| x > t - per).count()
    }

    #[test]
    fn a_full_window_refuses_until_its_oldest_call_leaves() {
        // 3 per 10 s, calls at 0, 1, 2 s
        let w = vec![0, S, 2 * S];
        assert!(!has_room(&w, 5 * S, 10 * S, 3));
        assert_eq!(retry_after_seconds(&w, 5 * S, 10 * S, 3), 5);
        // at exactly 10 s the call at 0 s has left (the window is (t - per, t])
        assert!(has_room(&w, 10 * S, 10 * S, 3));
        assert_eq!(retry_after_seconds(&w, 10 * S, 10 * S, 3), 0);
        assert_eq!(admit(&w, 10 * S, 10 * S), vec![S, 2 * S, 10 * S]);
        // a retry time is rounded up to whole seconds, never 0 while refused
        assert_eq!(retry_after_seconds(&w, 9 * S + 1, 10 * S, 3), 1);
        assert_eq!(retry_after_seconds(&w, 5 * S + 500_000, 10 * S, 3), 5);
    }

    #[test]
    fn a_window_beyond_the_range_of_microseconds_saturates() {
        assert_eq!(window_us(0, 1, 0), 86_400 * S);
        assert_eq!(window_us(1, 0, 5), 30 * 86_400 * S + 5);
        assert_eq!(window_us(12_000_000, 0, 0), i64::MAX); // 1,000,000 years
        assert_eq!(window_us(i32::MIN, i32::MIN, i64::MIN), i64::MIN);
        let w = vec![S, 2 * S];
        assert_eq!(used(&w, 3 * S, i64::MAX), 2);
        assert!(!has_room(&w, 3 * S, i64::MAX, 2));
        assert!(retry_after_seconds(&w, 3 * S, i64::MAX, 2) > 9_000_000_000_000); // ~292,000 years
        assert_eq!(admit(&w, 3 * S, i64::MAX), vec![S, 2 * S, 3 * S]);
    }

    #[test]
    fn a_limit_below_one_call_never_admits_and_never_panics() {
        let w = vec![S, 2 * S];
        for max in [0, -1, i64::MIN] {
            assert!(!has_room(&w, 6 * S, 10 * S, max));
            assert!(!has_room(&[], 6 * S, 10 * S, max));
            assert_eq!(retry_after_seconds(&w, 6 * S, 10 * S, max), i64::MAX);
            assert_eq!(retry_after_seconds(&[], 6 * S, 10 * S, max), i64::MAX);
        }
    }

    #[test]
    fn a_lowered_limit_counts_every_call_still_in_the_window() {
        // five calls in the window and the limit lowered to 2: refused until the 2nd newest call leaves
        let w = vec![S, 2 * S, 3 * S, 4 * S, 5 * S];
        assert!(!has_room(&w, 6 * S, 10 * S, 2));
        assert_eq!(retry_after_seconds(&w, 6 * S, 10 * S, 2), 8); // the call at 4 s leaves at 14 s
        assert!(has_room(&w, 14 * S, 10 * S, 2));
        assert_eq!(used(&w, 14 * S, 10 * S), 1);
    }

    #[test]
    fn the_clock_never_goes_backwards() {
        let w = vec![5 * S, 9 * S];
        // a clock behind the last admission records the call at the last admission's time
        assert_eq!(admit(&w, 3 * S, 10 * S), vec![5 * S, 9 * S, 9 * S]);
        assert_eq!(used(&w, 3 * S, 10 * S), 2);
        assert!(!has_room(&w, 3 * S, 10 * S, 2));
        assert_eq!(retry_after_seconds(&w, 3 * S, 10 * S, 2), 6);
    }

    #[test]
    fn an_empty_window_and_a_zero_limit() {
        assert!(has_room(&[], 0, 10 * S, 1));
        assert_eq!(admit(&[], 7, 10 * S), vec![7]);
        assert_eq!(used(&[], 7, 10 * S), 0);
        assert!(!has_room(&[], 0, 10 * S, 0));
    }

    #[test]
    fn infinite_times_do_not_overflow() {
        let w = vec![i64::MIN, 0];
        assert!(has_room(&w, i64::MAX, S, 2));
        assert_eq!(admit(&w, i64::MAX, S), vec![i64::MAX]);
        assert!(!has_room(&[0, S], i64::MIN, 10 * S, 2));
        assert_eq!(retry_after_seconds(&[0, S], i64::MIN, 10 * S, 2), 9);
        assert_eq!(retry_after_seconds(&[i64::MAX, i64::MAX], 0, 10 * S, 2), 1);
    }

    #[test]
    fn window_lengths_are_fixed_durations() {
        assert_eq!(window_us(0, 0, 60 * S), 60 * S);
        assert_eq!(window_us(0, 1, 0), 86_400 * S);
        assert_eq!(window_us(1, 0, 0), 30 * 86_400 * S);
    }

    #[test]
    fn the_one_comparison_checks_agree_with_counting() {
        // every call pattern of a small deterministic generator, every limit and window
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let per = (1 + next() % 20) as i64 * S / 2;
            let max = 1 + (next() % 6) as i64;
            let mut w: Vec<i64> = Vec::new();
            let mut t = 0i64;
            for _ in 0..60 {
                // mostly forward, sometimes a step back
                t += (next() % (3 * S as u64)) as i64 - S / 4;
                let room = counted(&w, t, per) < max as usize;
                assert_eq!(has_room(&w, t, per, max), room);
                if room {
                    assert_eq!(retry_after_seconds(&w, t, per, max), 0);
                    w = admit(&w, t, per);
                    assert!(w.windows(2).all(|p| p[0] <= p[1]));
                    assert!(w.len() <= max as usize);
                    assert_eq!(used(&w, *w.last().unwrap(), per), w.len());
                } else {
                    let r = retry_after_seconds(&w, t, per, max);
                    assert!(r >= 1);
                    let now = call_time(&w, t);
                    // refused a whole second before, admitted at the retry time
                    assert!(counted(&w, now + (r - 1) * S, per) >= max as usize || r == 1);
                    assert!(has_room(&w, now + r * S, per, max));
                }
            }
        }
    }
}
