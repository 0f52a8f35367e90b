//! SQL bindings of the experiments capability: GrowthBook's assignment primitives. Pure functions (IMMUTABLE,
//! PARALLEL SAFE), safe for any caller; they read no table.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::growthbook;
use crate::errors::AnalyticsError;

/// Bucket ranges as a two-dimensional `double precision[]` (n rows of [start, end]); n = 0 gives an empty array.
pub struct Ranges(Vec<(f64, f64)>);

impl IntoDatum for Ranges {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let mut elems: Vec<pg_sys::Datum> =
            self.0.iter().flat_map(|&(a, b)| [a.into_datum(), b.into_datum()]).map(|d| d.expect("float8")).collect();
        let mut dims = [self.0.len() as i32, 2];
        let mut lbs = [1, 1];
        let ndims = if self.0.is_empty() { 0 } else { 2 };
        unsafe {
            Some(pg_sys::Datum::from(pg_sys::construct_md_array(
                elems.as_mut_ptr(),
                std::ptr::null_mut(),
                ndims,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                pg_sys::FLOAT8OID,
                8,
                true,
                b'd' as std::ffi::c_char,
            )))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::FLOAT8ARRAYOID
    }
}

unsafe impl BoxRet for Ranges {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            Some(d) => unsafe { fcinfo.return_raw_datum(d) },
            None => fcinfo.return_null(),
        }
    }
}

impl_sql_translatable!(Ranges, "double precision[]");

/// `analytics.gb_hash(seed text, value text, version int) returns double precision`
///
/// GrowthBook's hash of a unit into [0, 1): FNV-1a 32-bit; version 1 `fnv32a(value || seed) % 1000 / 1000`,
/// version 2 `fnv32a(text of fnv32a(seed || value)) % 10000 / 10000`; NULL for any other version. Hashes UTF-8
/// bytes (the JavaScript SDK hashes UTF-16 code units; they agree on ASCII).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn gb_hash(seed: &str, value: &str, version: i32) -> Option<f64> {
    growthbook::hash(seed, value, version)
}

/// `analytics.equal_weights(n int) returns double precision[]`: n equal weights summing to 1 (empty for n <= 0).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn equal_weights(n: i32) -> Vec<f64> {
    growthbook::equal_weights(n)
}

fn check_count(n: i32) {
    if n > 10_000 {
        AnalyticsError::invalid(format!("n: at most 10000 variations, got {n}")).raise();
    }
}

/// `analytics.bucket_ranges(n int, coverage float8 = 1, weights float8[] = NULL) returns double precision[]`
///
/// GrowthBook's getBucketRanges: one `[start, end)` pair per variation, as an n x 2 array. Coverage is clamped to
/// [0, 1]; weights missing, of the wrong length, or not summing to 1 within 0.01 are replaced by equal weights.
/// The result is a two-dimensional array, `ranges[i][1]` the start and `ranges[i][2]` the end of variation i-1.
#[pg_extern(immutable, parallel_safe)]
pub fn bucket_ranges(
    n: i32,
    coverage: default!(Option<f64>, 1.0),
    weights: default!(Option<Vec<Option<f64>>>, "NULL"),
) -> Ranges {
    check_count(n);
    // a NULL inside the weights makes them invalid, like a wrong length: equal weights
    let weights: Option<Vec<f64>> = weights.and_then(|w| w.into_iter().collect());
    Ranges(growthbook::bucket_ranges(n, coverage.unwrap_or(1.0), weights.as_deref()))
}

/// `analytics.choose_variation(x float8, ranges float8[][]) returns int`
///
/// GrowthBook's chooseVariation: the 0-based index of the range with `start <= x < end`, or -1.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn choose_variation(x: f64, ranges: pgrx::Array<'_, f64>) -> i32 {
    let flat: Vec<Option<f64>> = ranges.iter().collect();
    if flat.len() % 2 != 0 || flat.iter().any(Option::is_none) {
        AnalyticsError::invalid("ranges: must be an array of [start, end] pairs without NULLs").raise();
    }
    let pairs: Vec<(f64, f64)> = flat.chunks(2).map(|p| (p[0].unwrap_or(0.0), p[1].unwrap_or(0.0))).collect();
    growthbook::choose_variation(x, &pairs).map_or(-1, |i| i as i32)
}

/// `analytics.in_namespace(unit text, namespace text, range_start float8, range_end float8) returns boolean`
///
/// GrowthBook's inNamespace: whether the unit's hash with seed `'__' || namespace` (version 1) is in
/// `[range_start, range_end)`.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn in_namespace(unit: &str, namespace: &str, range_start: f64, range_end: f64) -> bool {
    growthbook::in_namespace(unit, namespace, range_start, range_end)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    const CASES: &str = include_str!("../../tests/data/growthbook/cases.json");

    /// The SQL functions agree with the GrowthBook cases too (the pure module is checked case by case in its
    /// unit test; this checks the bindings: argument passing, NULLs, arrays).
    #[pg_test]
    fn sql_functions_pass_the_growthbook_cases() {
        let cases: Value = serde_json::from_str(CASES).unwrap();
        for c in cases["hash"].as_array().unwrap() {
            let got = Spi::get_one_with_args::<f64>(
                "select analytics.gb_hash($1, $2, $3)",
                &[c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into(), (c[2].as_i64().unwrap() as i32).into()],
            )
            .unwrap();
            assert_eq!(got, c[3].as_f64(), "gb_hash {c}");
        }
        for c in cases["inNamespace"].as_array().unwrap() {
            let ns = &c[2];
            let got = Spi::get_one_with_args::<bool>(
                "select analytics.in_namespace($1, $2, $3, $4)",
                &[c[1].as_str().unwrap().into(), ns[0].as_str().unwrap().into(), ns[1].as_f64().unwrap().into(), ns[2].as_f64().unwrap().into()],
            )
            .unwrap();
            assert_eq!(got, c[3].as_bool(), "in_namespace {}", c[0]);
        }
        for c in cases["getBucketRange"].as_array().unwrap() {
            let args = &c[1];
            let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
            let got = Spi::get_one_with_args::<String>(
                "select array(select floor(x * 1e8) / 1e8 from unnest(analytics.bucket_ranges($1, $2, $3)) x)::text",
                &[(args[0].as_i64().unwrap() as i32).into(), args[1].as_f64().unwrap().into(), weights.into()],
            )
            .unwrap()
            .unwrap();
            let want: Vec<String> = c[2]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| format!("{}", (x.as_f64().unwrap() * 1e8).floor() / 1e8)))
                .collect();
            assert_eq!(got, format!("{{{}}}", want.join(",")), "bucket_ranges {}", c[0]);
        }
        for c in cases["chooseVariation"].as_array().unwrap() {
            let ranges: Vec<String> =
                c[2].as_array().unwrap().iter().map(|r| format!("{{{},{}}}", r[0], r[1])).collect();
            let got = Spi::get_one_with_args::<i32>(
                "select analytics.choose_variation($1, $2::float8[][])",
                &[c[1].as_f64().unwrap().into(), format!("{{{}}}", ranges.join(",")).into()],
            )
            .unwrap();
            assert_eq!(got.map(i64::from), c[3].as_i64(), "choose_variation {}", c[0]);
        }
    }

    #[pg_test]
    fn unknown_hash_version_is_null_and_ranges_have_two_columns() {
        assert_eq!(Spi::get_one::<f64>("select analytics.gb_hash('a', 'b', 3)").unwrap(), None);
        assert_eq!(Spi::get_one::<i32>("select array_length(analytics.bucket_ranges(3), 2)").unwrap(), Some(2));
        assert_eq!(Spi::get_one::<i32>("select analytics.choose_variation(0.99, analytics.bucket_ranges(2, 0.5))").unwrap(), Some(-1));
    }

    #[pg_test(error = "ranges: must be an array of [start, end] pairs without NULLs")]
    fn malformed_ranges_are_rejected() {
        Spi::run("select analytics.choose_variation(0.5, '{0, 0.5, 1}'::float8[])").unwrap();
    }
}
