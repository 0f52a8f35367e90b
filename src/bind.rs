//! What every SQL binding needs between the core and Postgres: the core's error type raised as a Postgres ERROR
//! with its SQLSTATE, and required-argument checks. Capabilities import these from here, never from each other.

pub use analytics_core::errors::{AnalyticsError, ErrorKind};

/// Raise as a Postgres ERROR (`ereport`) with the error's SQLSTATE and message. Never returns.
pub trait Raise {
    fn raise(self) -> !;
}

impl Raise for AnalyticsError {
    fn raise(self) -> ! {
        // the SQLSTATE is the core's (ErrorKind::sqlstate), packed the way Postgres packs it (MAKE_SQLSTATE); the
        // #[pg_test] below checks that every kind arrives as its code
        let packed = self.kind.sqlstate().bytes().enumerate()
            .fold(0i32, |acc, (i, b)| acc + (((i32::from(b) - i32::from(b'0')) & 0x3F) << (6 * i)));
        let code = pgrx::pg_sys::errcodes::PgSqlErrorCode::from(packed);
        pgrx::ereport!(pgrx::PgLogLevel::ERROR, code, self.message);
        unreachable!("ereport(ERROR) does not return")
    }
}

/// Unwrap a core result inside a SQL binding: `Ok` passes through, `Err` becomes a Postgres ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, AnalyticsError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}

/// A required argument: its value, or 22004 `<name>: is required`.
pub fn required<T>(value: Option<T>, name: &str) -> T {
    value.unwrap_or_else(|| AnalyticsError::new(ErrorKind::NullValue, format!("{name}: is required")).raise())
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The SQLSTATE of every core error kind survives the trip into a Postgres ERROR.
    #[pg_test]
    fn every_error_kind_raises_its_sqlstate() {
        use super::{AnalyticsError, ErrorKind, Raise};
        let kinds = [
            ErrorKind::InvalidParameter,
            ErrorKind::NullValue,
            ErrorKind::InvalidText,
            ErrorKind::InvalidDatetime,
            ErrorKind::LimitExceeded,
            ErrorKind::CheckViolation,
            ErrorKind::InsufficientPrivilege,
            ErrorKind::NoDataFound,
            ErrorKind::WrongState,
        ];
        for kind in kinds {
            let caught = PgTryBuilder::new(|| -> Option<String> { AnalyticsError::new(kind, "field: bad").raise() })
                .catch_others(|e| match e {
                    pgrx::pg_sys::panic::CaughtError::ErrorReport(r) | pgrx::pg_sys::panic::CaughtError::PostgresError(r) => {
                        let code = unsafe { pgrx::pg_sys::unpack_sql_state(r.sql_error_code() as i32) };
                        let code = unsafe { std::ffi::CStr::from_ptr(code) }.to_string_lossy().into_owned();
                        Some(format!("{code} {}", r.message()))
                    }
                    other => Some(format!("{other:?}")),
                })
                .execute();
            assert_eq!(caught, Some(format!("{} field: bad", kind.sqlstate())));
        }
    }
}
