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

/// A jsonb argument, as the text Postgres writes for it, parsed for the core. jsonb holds values serde_json does not:
/// numbers beyond double precision's range (`1e400`) and nesting deeper than serde_json's 128 levels. Either is an
/// error (22023) naming the argument, not a panic.
pub fn parse_json_arg(text: &str, name: &str) -> Result<serde_json::Value, AnalyticsError> {
    serde_json::from_str(text).map_err(|e| {
        let reason = e.to_string();
        let what = if reason.starts_with("number out of range") {
            "holds a number beyond the range of double precision"
        } else if reason.starts_with("recursion limit exceeded") {
            "is nested more than 128 levels deep"
        } else {
            return AnalyticsError::invalid(format!("{name}: is not JSON: {e}"));
        };
        AnalyticsError::invalid(format!("{name}: {what} (at character {})", e.column()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_serde_cannot_hold_are_errors_naming_the_argument() {
        assert_eq!(parse_json_arg(r#"{"a": [1, 2.5, "x"]}"#, "params").unwrap(), serde_json::json!({"a": [1, 2.5, "x"]}));
        let e = parse_json_arg(r#"{"threshold": 1e400}"#, "params").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        assert_eq!(e.message, "params: holds a number beyond the range of double precision (at character 19)");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse_json_arg(&deep, "rule").unwrap_err();
        assert_eq!(e.message, "rule: is nested more than 128 levels deep (at character 128)");
        assert_eq!(parse_json_arg("{", "rule").unwrap_err().message, "rule: is not JSON: EOF while parsing an object at line 1 column 1");
    }
}
