//! What every SQL binding needs between the core and Postgres: the core's error type raised as a Postgres ERROR
//! with its SQLSTATE, and required-argument checks. Capabilities import these from here, never from each other.

pub use analytics_core::errors::{AnalyticsError, ErrorKind};

/// Raise as a Postgres ERROR (`ereport`) with the error's SQLSTATE and message. Never returns.
pub trait Raise {
    fn raise(self) -> !;
}

impl Raise for AnalyticsError {
    fn raise(self) -> ! {
        use pgrx::pg_sys::errcodes::PgSqlErrorCode as C;
        let code = match self.kind {
            ErrorKind::InvalidParameter => C::ERRCODE_INVALID_PARAMETER_VALUE,
            ErrorKind::NullValue => C::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ErrorKind::InvalidText => C::ERRCODE_INVALID_TEXT_REPRESENTATION,
            ErrorKind::InvalidDatetime => C::ERRCODE_INVALID_DATETIME_FORMAT,
            ErrorKind::LimitExceeded => C::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            ErrorKind::CheckViolation => C::ERRCODE_CHECK_VIOLATION,
            ErrorKind::InsufficientPrivilege => C::ERRCODE_INSUFFICIENT_PRIVILEGE,
            ErrorKind::NoDataFound => C::ERRCODE_NO_DATA_FOUND,
            ErrorKind::WrongState => C::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        };
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
