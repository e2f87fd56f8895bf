//! What a failed upstream request tells the client: a reason code, its
//! status (502, or 504 when the upstream was too slow) and a page for a
//! browser navigation, JSON otherwise.

use crate::config::Portal;
use crate::pages;
use crate::respond::{self, Resp};
use pingora::{ErrorSource, ErrorType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The host name has not resolved to any address yet.
    Unresolved,
    /// Refused, no route, or another error before the connection was up.
    ConnectFailed,
    /// `upstream.connect_timeout` passed without a connection.
    ConnectTimeout,
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    Tls,
    /// `upstream.read_timeout` / `write_timeout` passed on an open connection.
    Timeout,
    /// The upstream closed or reset the connection mid-request.
    Reset,
    /// The upstream answered something that is not HTTP.
    BadResponse,
}

impl Failure {
    /// The failure an error of pingora's proxy stands for; `None` for an
    /// error that is not the upstream's (the client went away, a bad request).
    pub fn of(e: &pingora::Error) -> Option<Failure> {
        use ErrorType::*;
        let upstream = *e.esource() == ErrorSource::Upstream;
        Some(match e.etype() {
            Custom(name) if *name == super::UNRESOLVED => Failure::Unresolved,
            ConnectTimedout => Failure::ConnectTimeout,
            ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure => Failure::ConnectFailed,
            TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError | TLSWantX509Lookup => {
                Failure::Tls
            }
            SocketError | BindError if upstream => Failure::ConnectFailed,
            ReadTimedout | WriteTimedout if upstream => Failure::Timeout,
            ConnectionClosed | ReadError | WriteError if upstream => Failure::Reset,
            InvalidHTTPHeader | H1Error | H2Error | InvalidH2 | H2Downgrade if upstream => Failure::BadResponse,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Failure::Unresolved => "upstream_unresolved",
            Failure::ConnectFailed => "upstream_connect_failed",
            Failure::ConnectTimeout => "upstream_connect_timeout",
            Failure::Tls => "upstream_tls_failed",
            Failure::Timeout => "upstream_timeout",
            Failure::Reset => "upstream_reset",
            Failure::BadResponse => "upstream_bad_response",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Failure::ConnectTimeout | Failure::Timeout => 504,
            _ => 502,
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Failure::Unresolved => "The application's address could not be resolved yet. Try again in a moment.",
            Failure::ConnectFailed => "The application is not reachable right now. Try again in a moment.",
            Failure::ConnectTimeout => "The application did not accept the connection in time. Try again in a moment.",
            Failure::Tls => "The application's TLS certificate was not accepted.",
            Failure::Timeout => "The application did not answer in time.",
            Failure::Reset => "The application closed the connection before answering.",
            Failure::BadResponse => "The application sent an answer that is not valid HTTP.",
        }
    }

    /// The answer of SPEC §6's shape: the reason in both the page and the JSON.
    pub fn response(self, portal: Option<&Portal>, navigation: bool) -> Resp {
        if !navigation {
            return respond::json(
                self.status(),
                &serde_json::json!({ "error": self.code(), "message": self.explain() }),
            );
        }
        let back = portal.map(|p| p.path("/")).unwrap_or_else(|| "/".into());
        let heading = if self.status() == 504 {
            "The application is taking too long"
        } else {
            "The application is unavailable"
        };
        respond::html(
            self.status(),
            pages::error(&pages::ErrorPage {
                heading,
                message: self.explain(),
                detail: None,
                reason: self.code(),
                back_url: &back,
                back_label: "Try again",
                color: portal.and_then(|p| p.branding.color.as_deref()),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(t: ErrorType) -> Box<pingora::Error> {
        pingora::Error::new_up(t)
    }

    #[test]
    fn classification() {
        let table = [
            (
                up(ErrorType::Custom(super::super::UNRESOLVED)),
                Some(Failure::Unresolved),
            ),
            (up(ErrorType::ConnectRefused), Some(Failure::ConnectFailed)),
            (
                pingora::Error::new(ErrorType::ConnectRefused),
                Some(Failure::ConnectFailed),
            ),
            (up(ErrorType::ConnectTimedout), Some(Failure::ConnectTimeout)),
            (up(ErrorType::InvalidCert), Some(Failure::Tls)),
            (up(ErrorType::ReadTimedout), Some(Failure::Timeout)),
            (up(ErrorType::ConnectionClosed), Some(Failure::Reset)),
            (up(ErrorType::InvalidHTTPHeader), Some(Failure::BadResponse)),
            // The client's side: not the upstream's failure.
            (pingora::Error::new_down(ErrorType::ReadTimedout), None),
            (pingora::Error::new_down(ErrorType::ConnectionClosed), None),
            (up(ErrorType::HTTPStatus(400)), None),
        ];
        for (e, want) in table {
            assert_eq!(Failure::of(&e), want, "{e}");
        }
        assert_eq!(Failure::Timeout.status(), 504);
        assert_eq!(Failure::ConnectTimeout.status(), 504);
        assert_eq!(Failure::Reset.status(), 502);
    }

    #[test]
    fn json_and_page() {
        let r = Failure::ConnectFailed.response(None, false);
        assert_eq!(r.status(), 502);
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["error"], "upstream_connect_failed");
        let r = Failure::Timeout.response(None, true);
        assert_eq!(r.status(), 504);
        let body = String::from_utf8_lossy(r.body());
        assert!(body.contains("upstream_timeout"), "{body}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}
