//! CNI errors: the spec's well-known codes (SPEC.md "Error"), switchyard's own from 100 up, and
//! the JSON object a runtime reads from stdout.

use std::fmt;

use serde::Serialize;

/// An error code. 1-99 are the spec's; 100 and up are switchyard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the configuration's `cniVersion` is one the plugin does not speak.
    IncompatibleVersion,
    /// 2: a field (or value) switchyard does not support.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` variable is missing or invalid.
    InvalidEnv,
    /// 5: an I/O failure (the daemon could not make the system match).
    Io,
    /// 6: stdin could not be decoded.
    Decode,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 11: try again later (the daemon is not reachable).
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADD.
    NotAvailable,
    /// 51: STATUS: not available, and existing containers lost connectivity.
    NotAvailableDegraded,
    /// 100: CHECK found the attachment different from what it should be.
    CheckFailed,
    /// 101: the daemon refused the request (an address or port taken, a MAC in use, ...).
    Refused,
}

impl Code {
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::NotAvailableDegraded => 51,
            Code::CheckFailed => 100,
            Code::Refused => 101,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: Code,
    /// One line a person understands: what is wrong, with which value.
    pub msg: String,
    pub details: Option<String>,
}

impl CniError {
    /// `msg` is kept to one line (a daemon's or the system's message may hold a newline; the
    /// runtime shows `msg` as the error's line, as dockerd shows the plugin's `Err`).
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into().replace('\n', " "),
            details: None,
        }
    }

    /// The error object, in `version`.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a str>,
        }
        serde_json::to_value(Wire {
            cni_version: version,
            code: self.code.number(),
            msg: &self.msg,
            details: self.details.as_deref(),
        })
        .expect("an error always serializes")
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.number())
    }
}
