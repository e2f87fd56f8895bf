//! HTML pages, rendered with minijinja (autoescaping on): nothing a user or
//! Entra sends can become markup.

use minijinja::{Environment, context};
use std::sync::LazyLock;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("templates/base.html")),
        ("error.html", include_str!("templates/error.html")),
        ("logged_out.html", include_str!("templates/logged_out.html")),
        ("logout_confirm.html", include_str!("templates/logout_confirm.html")),
        ("login.html", include_str!("templates/login.html")),
        ("two_factor.html", include_str!("templates/two_factor.html")),
    ] {
        env.add_template(name, src).expect("bundled templates parse");
    }
    env
});

fn render(name: &str, ctx: minijinja::Value) -> String {
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        // Templates are compiled in and tested; this is unreachable in
        // practice, but an error page must never fail to render.
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Something went wrong.</p>".into())
}

pub struct ErrorPage<'a> {
    pub heading: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub reason: &'a str,
    pub back_url: &'a str,
    pub back_label: &'a str,
    pub color: Option<&'a str>,
}

pub fn error(p: &ErrorPage<'_>) -> String {
    render(
        "error.html",
        context! {
            title => p.heading, heading => p.heading, message => p.message, detail => p.detail,
            reason => p.reason, back_url => p.back_url, back_label => p.back_label, color => p.color,
        },
    )
}

pub struct LoginPage<'a> {
    pub heading: &'a str,
    pub logo_url: Option<&'a str>,
    pub color: Option<&'a str>,
    pub action: &'a str,
    pub local_action: &'a str,
    pub rd: &'a str,
    /// Show the "Remember me" box (`sso.remember_me`).
    pub remember_me: bool,
    pub remember_me_days: u64,
}

pub fn login(p: &LoginPage<'_>) -> String {
    render(
        "login.html",
        context! {
            title => p.heading, heading => p.heading, logo_url => p.logo_url, color => p.color, action => p.action,
            local_action => p.local_action, rd => p.rd, remember_me => p.remember_me,
            remember_me_days => p.remember_me_days,
        },
    )
}

/// The second-factor page: enrolment (QR code and key), verification, or
/// the recovery codes shown once after enrolment.
pub struct TwoFactorPage<'a> {
    pub heading: &'a str,
    pub logo_url: Option<&'a str>,
    pub color: Option<&'a str>,
    pub action: &'a str,
    pub rd: &'a str,
    pub csrf: &'a str,
    /// Enrolment: the QR code (SVG made by the gateway from its own data)
    /// and the key as base32 text.
    pub enrol: Option<(&'a str, &'a str)>,
    pub error: Option<&'a str>,
    /// Show the "don't ask again" box (`two_factor.dont_ask_again`).
    pub dont_ask_again: bool,
    pub dont_ask_again_days: u64,
    /// After enrolment: the recovery codes and where to go on.
    pub recovery: Option<(&'a [String], &'a str)>,
}

pub fn two_factor(p: &TwoFactorPage<'_>) -> String {
    let (qr_svg, secret) = p.enrol.unzip();
    let (recovery_codes, continue_url) = p.recovery.unzip();
    render(
        "two_factor.html",
        context! {
            title => p.heading, heading => p.heading, logo_url => p.logo_url, color => p.color,
            action => p.action, rd => p.rd, csrf => p.csrf, enrol => p.enrol.is_some(), qr_svg, secret,
            error => p.error, dont_ask_again => p.dont_ask_again, dont_ask_again_days => p.dont_ask_again_days,
            recovery_codes, continue_url,
        },
    )
}

pub fn logged_out(login_url: &str, color: Option<&str>) -> String {
    render("logged_out.html", context! { title => "Signed out", login_url, color })
}

pub fn logout_confirm(action: &str, csrf: &str, color: Option<&str>) -> String {
    render(
        "logout_confirm.html",
        context! { title => "Sign out?", action, csrf, color },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_escapes_what_it_is_given() {
        let html = error(&ErrorPage {
            heading: "Sign-in failed",
            message: "Entra said no.",
            detail: Some("<script>alert(1)</script>"),
            reason: "idp_error",
            back_url: "/",
            back_label: "Try again",
            color: None,
        });
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("idp_error"));
        assert!(
            html.contains("--brand: #0b5cad;"),
            "the default colour when none is configured"
        );
    }
}
