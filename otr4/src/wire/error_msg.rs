//! OTR Error Messages (otrv4.md §"OTR Error Messages"): `?OTR Error: ERROR_N: text`,
//! built and parsed; only recognised at the very start of a message.

use alloc::string::String;

/// The start of every OTR error message (otrv4.md §"OTR Error Messages"). It is only
/// recognised at the start of a message, never embedded.
pub const ERROR_PREFIX: &str = "?OTR Error:";

/// The error codes of otrv4.md §"OTR Error Messages".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `ERROR_1`: the message is undecryptable.
    UnreadableMessage = 1,
    /// `ERROR_2`: the message arrived in a state that is not encrypted messages.
    NotInPrivateState = 2,
    /// `ERROR_3`: the instance tags do not correspond.
    MalformedMessage = 3,
}

impl ErrorCode {
    hazmat_pub! {
        /// All codes, in order.
        const ALL: [ErrorCode; 3] = [
            ErrorCode::UnreadableMessage,
            ErrorCode::NotInPrivateState,
            ErrorCode::MalformedMessage,
        ];
    }

    /// The code's number `N` in `ERROR_N`.
    #[cfg(feature = "hazmat")]
    pub fn number(self) -> u8 {
        self as u8
    }

    hazmat_pub! {
        /// The code's identifier, `ERROR_N`.
        fn identifier(self) -> &'static str {
            match self {
                ErrorCode::UnreadableMessage => "ERROR_1",
                ErrorCode::NotInPrivateState => "ERROR_2",
                ErrorCode::MalformedMessage => "ERROR_3",
            }
        }
    }

    hazmat_pub! {
        /// The spec's human-readable text for this code.
        fn default_text(self) -> &'static str {
            match self {
                ErrorCode::UnreadableMessage => "Unreadable message",
                ErrorCode::NotInPrivateState => "Not in private state message",
                ErrorCode::MalformedMessage => "Malformed message",
            }
        }
    }
}

/// A parsed OTR error message (otrv4.md §"OTR Error Messages").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMessage<'a> {
    /// The code, if the message carries one of the spec's `ERROR_N: ` codes. `None` both
    /// when there is no code and when the code is unknown: per otrv4.md §"Receiving an
    /// Error Message" such a message is ignored.
    pub code: Option<ErrorCode>,
    /// The human-readable part: after the code if one was recognised, otherwise
    /// everything after the prefix (and one optional space).
    pub text: &'a str,
}

/// Builds `?OTR Error: ERROR_N: <default text>` (otrv4.md §"OTR Error Messages").
pub fn build_error(code: ErrorCode) -> String {
    build_error_with_text(code, code.default_text())
}

/// Builds `?OTR Error: ERROR_N: <text>`, e.g. with a localised text.
pub fn build_error_with_text(code: ErrorCode, text: &str) -> String {
    let id = code.identifier();
    let mut s = String::with_capacity(ERROR_PREFIX.len() + id.len() + text.len() + 3);
    s.push_str(ERROR_PREFIX);
    s.push(' ');
    s.push_str(id);
    s.push_str(": ");
    s.push_str(text);
    s
}

/// Parses an OTR error message. Returns `None` unless `msg` starts with `?OTR Error:`
/// (otrv4.md §"OTR Error Messages": the string "must be in at the start position").
///
/// After the prefix one space is skipped if present; then `ERROR_1:`, `ERROR_2:` or
/// `ERROR_3:` (exactly, followed by one optional space) sets [`ErrorMessage::code`].
pub fn parse_error(msg: &str) -> Option<ErrorMessage<'_>> {
    let rest = msg.strip_prefix(ERROR_PREFIX)?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for code in ErrorCode::ALL {
        if let Some(text) = rest
            .strip_prefix(code.identifier())
            .and_then(|r| r.strip_prefix(':'))
        {
            let text = text.strip_prefix(' ').unwrap_or(text);
            return Some(ErrorMessage {
                code: Some(code),
                text,
            });
        }
    }
    Some(ErrorMessage {
        code: None,
        text: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_matches_spec_format() {
        assert_eq!(
            build_error(ErrorCode::UnreadableMessage),
            "?OTR Error: ERROR_1: Unreadable message"
        );
        assert_eq!(
            build_error(ErrorCode::NotInPrivateState),
            "?OTR Error: ERROR_2: Not in private state message"
        );
        assert_eq!(
            build_error(ErrorCode::MalformedMessage),
            "?OTR Error: ERROR_3: Malformed message"
        );
        assert_eq!(
            build_error_with_text(ErrorCode::MalformedMessage, "x"),
            "?OTR Error: ERROR_3: x"
        );
    }

    #[test]
    fn round_trip_every_code() {
        for code in ErrorCode::ALL {
            let m = build_error(code);
            assert_eq!(
                parse_error(&m),
                Some(ErrorMessage {
                    code: Some(code),
                    text: code.default_text()
                })
            );
            assert_eq!(code.identifier(), alloc::format!("ERROR_{}", code.number()));
        }
    }

    #[test]
    fn parse_variants() {
        assert_eq!(
            parse_error("?OTR Error:ERROR_2:x"),
            Some(ErrorMessage {
                code: Some(ErrorCode::NotInPrivateState),
                text: "x"
            })
        );
        assert_eq!(
            parse_error("?OTR Error: something broke"),
            Some(ErrorMessage {
                code: None,
                text: "something broke"
            })
        );
        assert_eq!(
            parse_error("?OTR Error: ERROR_9: future"),
            Some(ErrorMessage {
                code: None,
                text: "ERROR_9: future"
            })
        );
        assert_eq!(
            parse_error("?OTR Error: ERROR_10: x"),
            Some(ErrorMessage {
                code: None,
                text: "ERROR_10: x"
            })
        );
        assert_eq!(
            parse_error("?OTR Error: ERROR_1 no colon"),
            Some(ErrorMessage {
                code: None,
                text: "ERROR_1 no colon"
            })
        );
        assert_eq!(
            parse_error("?OTR Error:"),
            Some(ErrorMessage {
                code: None,
                text: ""
            })
        );
    }

    #[test]
    fn only_at_start() {
        assert_eq!(
            parse_error("hi ?OTR Error: ERROR_1: Unreadable message"),
            None
        );
        assert_eq!(parse_error(" ?OTR Error: ERROR_1: x"), None);
        assert_eq!(parse_error("?OTR error: ERROR_1: x"), None);
        assert_eq!(parse_error(""), None);
    }
}
