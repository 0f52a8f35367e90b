//! Errors as users see them: a SQLSTATE and a message that names the offending field.
//!
//! Core functions return `Result<T, AnalyticsError>` (no Postgres needed, so they unit-test with plain `#[test]`);
//! the extension's bindings turn an `Err` into a Postgres ERROR with the same SQLSTATE (`raise` in the
//! extension's `src/bind.rs`). `ErrorKind` is the one list of SQLSTATEs analytics_ext raises.

use std::fmt;

/// The SQLSTATEs analytics_ext raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 22023 invalid_parameter_value: an argument or field has a value we cannot use.
    InvalidParameter,
    /// 22004 null_value_not_allowed: a required field is missing or null.
    NullValue,
    /// 22P02 invalid_text_representation: a field cannot be parsed (not a number, not a timestamp...).
    InvalidText,
    /// 22007 invalid_datetime_format: a timestamp that is not RFC 3339 with an offset.
    InvalidDatetime,
    /// 54000 program_limit_exceeded: a payload is larger than the documented limit.
    LimitExceeded,
    /// 23514 check_violation: a row would break an integrity rule.
    CheckViolation,
    /// 42501 insufficient_privilege.
    InsufficientPrivilege,
    /// P0002 no_data_found: the named object does not exist (or is not visible to the caller).
    NoDataFound,
    /// 55000 object_not_in_prerequisite_state: e.g. an illegal lifecycle transition.
    WrongState,
}

impl ErrorKind {
    /// The five-character SQLSTATE.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::InvalidParameter => "22023",
            ErrorKind::NullValue => "22004",
            ErrorKind::InvalidText => "22P02",
            ErrorKind::InvalidDatetime => "22007",
            ErrorKind::LimitExceeded => "54000",
            ErrorKind::CheckViolation => "23514",
            ErrorKind::InsufficientPrivilege => "42501",
            ErrorKind::NoDataFound => "P0002",
            ErrorKind::WrongState => "55000",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AnalyticsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AnalyticsError { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    /// Prefix the message with where the error happened, e.g. `spans[17]: `.
    pub fn at(mut self, location: &str) -> Self {
        self.message = format!("{location}: {}", self.message);
        self
    }
}

impl fmt::Display for AnalyticsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.sqlstate())
    }
}

impl std::error::Error for AnalyticsError {}
