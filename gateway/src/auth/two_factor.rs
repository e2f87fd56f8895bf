//! `/auth/2fa` (SPEC §4): the second step after an Entra sign-in. GET shows
//! the enrolment (QR code and key) or the code form; POST judges a code
//! (TOTP, or a recovery code once enrolled), marks the session done and, if
//! asked, remembers the browser. The session record in the store is what
//! every instance reads, so the change is written there and other instances'
//! cached copies are dropped over the revocation bus.

use super::{RequestContext, cross_site_post, is_navigation, origin_facts, param, params};
use crate::app::App;
use crate::respond::{self, Resp};
use crate::session::{Session, SessionKey, now_unix};
use crate::two_factor::{Accepted, FactorRecord, outcome};
use bytes::Bytes;
use cookie::SameSite;
use http::{Method, Request};
use policy::Reason;
use policy::two_factor::{self as rules, Mfa};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The 2FA page of a portal, returning to `rd` afterwards.
pub fn page_url(portal: &crate::config::Portal, rd: Option<&str>) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("rd", rd.unwrap_or("/"))
        .finish();
    format!("{}?{q}", portal.path("/auth/2fa"))
}

/// Where a request whose session owes the second factor goes: a navigation
/// to the page, anything else a 401 naming it (in the body and a header).
pub fn required(portal: &crate::config::Portal, rd: Option<&str>, navigation: bool) -> Resp {
    let url = page_url(portal, rd);
    if navigation {
        return respond::redirect(303, &url);
    }
    let reason = Reason::TwoFactorRequired;
    let mut r = respond::json(
        reason.status(),
        &serde_json::json!({ "error": reason.code(), "message": reason.explain(), "two_factor_url": url }),
    );
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        r.headers_mut().insert("x-auth-2fa-url", v);
    }
    r
}

/// The state the access decision (and this page) must see for a session:
/// its stored `mfa`, made pending if 2FA applies now to a session made
/// before it did (see `policy::two_factor::effective`).
pub fn effective(app: &App, s: &Session) -> Mfa {
    let tf = &app.config.two_factor;
    if !tf.enabled() && s.mfa.is_none() {
        return Mfa::None;
    }
    rules::effective(s.mfa, tf.applies_to(s.user_key(), false), tf.bypass_with_sso)
}

/// A session pending here may be done in the store (finished on another
/// instance, this copy cached before): the store's copy decides.
pub async fn refresh_pending(app: &App, id: &SessionKey, s: Arc<Session>) -> Arc<Session> {
    match app.sessions.get(id).await {
        Ok(Some(fresh)) if fresh.mfa != s.mfa && fresh.portal() == s.portal() => {
            app.sessions.drop_cached(id);
            fresh
        }
        _ => s,
    }
}

pub async fn handle(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Resp {
    let portal = app.portal(cx.portal);
    // The page's own form posts are answered with pages too.
    let nav = is_navigation(req) || req.method() == Method::POST;
    let p = params(req);
    let rd = policy::paths::safe_return_path(param(&p, "rd"), &portal.path("/"));
    if !app.config.two_factor.enabled() {
        return respond::redirect(303, &rd);
    }
    if req.method() == Method::POST && !policy::origin::post_is_same_origin(&origin_facts(app, req, cx)) {
        return cross_site_post(portal);
    }
    let (name, _) = app.cookie_names(cx.portal, cx.secure_cookies);
    let found = match respond::cookie_value(req.headers(), name) {
        Some(v) => app.sessions.for_cookie(v, portal, cx.client_name(app)).await,
        None => Ok(None),
    };
    let (id, s) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return super::login::to_login_page(portal, Some(&rd)),
        Err(_) => return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav),
    };
    let s = if effective(app, &s) == Mfa::Pending {
        refresh_pending(app, &id, s).await
    } else {
        s
    };
    if effective(app, &s) != Mfa::Pending {
        // Nothing owed (done, here or on another instance): on to the app.
        return respond::redirect(303, &rd);
    }
    let user = s.user_key().to_string();
    let now = now_unix();
    let mut rec = match app.factors.record(&user).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(event = "two_factor", result = "store_error", error = %e);
            return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
        }
    };
    let locked = rec.attempts().locked(now).or(app.factors.ip_locked(cx.client_ip, now));
    if let Some(secs) = locked {
        outcome("locked_out", &portal.name, &user);
        return locked_out(portal, secs, nav);
    }
    let view = View {
        app,
        cx,
        rd: &rd,
        session: &s,
    };
    if req.method() != Method::POST {
        return view.form(&user, &mut rec, None, 200).await;
    }
    let csrf_ok = param(&p, "csrf").is_some_and(|c| bool::from(c.as_bytes().ct_eq(s.csrf().as_bytes())));
    if !csrf_ok {
        outcome("bad_csrf", &portal.name, &user);
        return respond::refusal(Reason::CsrfMismatch, None, Some(portal), nav);
    }
    let code = param(&p, "code").unwrap_or_default();
    let judged = match app.factors.check(&user, &mut rec, code, now) {
        // Accepted by this copy of the record; spent only if no other
        // instance spent it first.
        Ok(how) => match app.factors.spend(&user, &rec, how, code).await {
            Ok(true) => Ok(how),
            Ok(false) => Err(rules::CodeRefusal::Replayed),
            Err(e) => {
                tracing::error!(event = "two_factor", result = "store_error", error = %e);
                return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
            }
        },
        refused => refused,
    };
    match judged {
        Ok(how) => {
            rec.set_attempts(rec.attempts().succeeded());
            app.factors.ip_succeeded(cx.client_ip);
            let codes = (!rec.enrolled).then(|| app.factors.enrol(&mut rec, now));
            if app.factors.save(&user, &rec).await.is_err() {
                return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
            }
            let mut done = (*s).clone();
            done.mfa = Mfa::Totp;
            if app.sessions.changed(&id, &done).await.is_err() {
                return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
            }
            let result = match (&codes, how) {
                (Some(_), _) => "enrolled",
                (None, Accepted::Totp) => "verified",
                (None, Accepted::RecoveryCode) => "recovery_code",
            };
            outcome(result, &portal.name, &user);
            let mut resp = match &codes {
                Some(codes) => view.recovery_codes(codes),
                None => respond::redirect(303, &rd),
            };
            let tf = &app.config.two_factor;
            let asked = param(&p, "dont_ask_again").is_some_and(|v| v == "on" || v == "1" || v == "true");
            if tf.dont_ask_again && asked {
                let lifetime = rules::remember_secs(tf.dont_ask_again_days);
                if let Ok(value) = app.factors.remember_cookie(&user, rec.generation, now + lifetime) {
                    let name =
                        policy::cookies::two_factor_cookie_name(&app.config.session.cookie_name, cx.secure_cookies);
                    respond::add_cookie(
                        &mut resp,
                        &respond::cookie(name, value, cx.secure_cookies, SameSite::Lax, Some(lifetime)),
                    );
                    outcome("remember_set", &portal.name, &user);
                }
            }
            resp
        }
        Err(refusal) => {
            let attempts = rec.attempts().failed(now);
            rec.set_attempts(attempts);
            // The count must stick even if the rest fails: no retry for free.
            let saved = app.factors.save(&user, &rec).await;
            let ip_lock = app.factors.ip_failed(cx.client_ip, now);
            outcome(refusal.label(), &portal.name, &user);
            if saved.is_err() {
                return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
            }
            if let Some(secs) = attempts.locked(now).or(ip_lock) {
                outcome("locked_out", &portal.name, &user);
                return locked_out(portal, secs, nav);
            }
            let message = match refusal {
                rules::CodeRefusal::Wrong => "That code is not right. Check your app and try again.",
                rules::CodeRefusal::Replayed => "That code was already used. Wait for the next one and try again.",
            };
            view.form(&user, &mut rec, Some(message), 400).await
        }
    }
}

fn locked_out(portal: &crate::config::Portal, secs: i64, nav: bool) -> Resp {
    let minutes = (secs + 59) / 60;
    let detail = format!("Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" });
    let mut r = respond::refusal(Reason::TwoFactorLocked, Some(&detail), Some(portal), nav);
    if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}

struct View<'a> {
    app: &'a App,
    cx: &'a RequestContext,
    rd: &'a str,
    session: &'a Session,
}

impl View<'_> {
    fn portal(&self) -> &crate::config::Portal {
        self.app.portal(self.cx.portal)
    }

    fn heading(&self) -> &str {
        self.portal()
            .branding
            .title
            .as_deref()
            .unwrap_or("Two-step verification")
    }

    /// The enrolment page (a user without a confirmed secret) or the code form.
    async fn form(&self, user: &str, rec: &mut FactorRecord, error: Option<&str>, status: u16) -> Resp {
        let portal = self.portal();
        let tf = &self.app.config.two_factor;
        let enrol = if rec.enrolled {
            None
        } else {
            match self.app.factors.secret_for_enrolment(user, rec).await {
                Ok(secret) => Some(secret),
                Err(e) => {
                    tracing::error!(event = "two_factor", result = "enrol_error", error = %e);
                    return respond::refusal(Reason::StoreUnavailable, None, Some(portal), true);
                }
            }
        };
        let enrol = enrol.map(|secret| {
            let b32 = crate::two_factor::base32(&secret);
            let account = self.session.email().unwrap_or(user);
            (
                crate::two_factor::qr::svg(&otpauth_uri(self.heading(), account, &b32)),
                b32,
            )
        });
        let action = portal.path("/auth/2fa");
        let html = crate::pages::two_factor(&crate::pages::TwoFactorPage {
            heading: self.heading(),
            logo_url: portal.branding.logo_url.as_deref(),
            color: portal.branding.color.as_deref(),
            action: &action,
            rd: self.rd,
            csrf: self.session.csrf(),
            enrol: enrol.as_ref().map(|(svg, b32)| (svg.as_str(), b32.as_str())),
            error,
            dont_ask_again: tf.dont_ask_again,
            dont_ask_again_days: tf.dont_ask_again_days,
            recovery: None,
        });
        no_store(respond::html(status, html))
    }

    fn recovery_codes(&self, codes: &[String]) -> Resp {
        let portal = self.portal();
        let action = portal.path("/auth/2fa");
        let html = crate::pages::two_factor(&crate::pages::TwoFactorPage {
            heading: self.heading(),
            logo_url: portal.branding.logo_url.as_deref(),
            color: portal.branding.color.as_deref(),
            action: &action,
            rd: self.rd,
            csrf: self.session.csrf(),
            enrol: None,
            error: None,
            dont_ask_again: false,
            dont_ask_again_days: 0,
            recovery: Some((codes, self.rd)),
        });
        no_store(respond::html(200, html))
    }
}

/// Pages carrying a secret or recovery codes are never cached.
fn no_store(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// The Key URI Format authenticator apps read from the QR code.
fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| {
        form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otpauth_uri_is_encoded() {
        assert_eq!(
            otpauth_uri("Support portal", "ann@contoso.com", "JBSWY3DPEHPK3PXP"),
            "otpauth://totp/Support%20portal:ann%40contoso.com?secret=JBSWY3DPEHPK3PXP&issuer=Support%20portal&algorithm=SHA1&digits=6&period=30"
        );
    }
}
