//! `/auth/account/azureresponse`: the end of a sign-in. Validates state,
//! browser binding, the token (SPEC §6), then creates a fresh session.

use super::{RequestContext, form_params, param, query_params};
use crate::app::App;
use crate::entra::token::{CodeExchange, ExchangeError, exchange};
use crate::entra::validate::{c_hash, peek_claims, validate_id_token};
use crate::metrics::METRICS;
use crate::respond::{self, Resp};
use crate::session::{LoginRecord, Session, SessionId, SessionRecord, now_unix, random_token};
use bytes::Bytes;
use cookie::SameSite;
use http::Request;
use policy::Reason;
use policy::TenantId;
use policy::claims::{TokenExpectations, VerifiedIdentity, check_issuer_and_tenant};
use policy::cookies::{local_cookie_name, login_cookie_name, session_cookie_name};
use std::time::Instant;
use subtle::ConstantTimeEq;

/// What may only arrive in a form_post body: in a URL it leaks to logs,
/// history and Referer headers.
const BEARER_FIELDS: [&str; 3] = ["id_token", "code", "access_token"];

struct Refused {
    reason: Reason,
    detail: Option<String>,
    /// The login cookie to clear (once the state has been consumed).
    clear_cookie: Option<String>,
    /// The token's tenant, when it is a GUID (logged with tenant refusals).
    tid: Option<String>,
}

impl From<Reason> for Refused {
    fn from(reason: Reason) -> Self {
        Refused {
            reason,
            detail: None,
            clear_cookie: None,
            tid: None,
        }
    }
}

pub async fn handle(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Resp {
    let started = Instant::now();
    let portal = app.portal(cx.portal);
    match complete(app, req, cx).await {
        Ok(resp) => {
            METRICS.signins.with_label_values(&["ok", "ok"]).inc();
            METRICS
                .signin_duration
                .with_label_values(&["ok"])
                .observe(started.elapsed().as_secs_f64());
            resp
        }
        Err(r) => {
            let result = if r.reason.status() >= 500 { "error" } else { "refused" };
            METRICS.signins.with_label_values(&[result, r.reason.code()]).inc();
            METRICS
                .signin_duration
                .with_label_values(&[result])
                .observe(started.elapsed().as_secs_f64());
            tracing::warn!(
                event = "signin", result, reason = r.reason.code(), portal = %portal.name,
                tid = r.tid.as_deref().unwrap_or(""),
                client_ip = cx.client_ip.map(tracing::field::display),
                user_agent = super::user_agent(req)
            );
            // The callback is always a top-level navigation (form_post).
            let mut resp = respond::refusal(r.reason, r.detail.as_deref(), Some(portal), true);
            if let Some(name) = r.clear_cookie {
                respond::add_cookie(&mut resp, &respond::expired_cookie(name, cx.secure_cookies));
            }
            resp
        }
    }
}

async fn complete(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Result<Resp, Refused> {
    let portal = app.portal(cx.portal);
    let query = query_params(req);
    // A POST is read from its body only; a GET may carry only an error.
    let p = if req.method() == http::Method::POST {
        form_params(req)
    } else {
        query.clone()
    };
    let token_in_query = query.iter().any(|(n, _)| BEARER_FIELDS.contains(&n.as_str()));
    let state = param(&p, "state").ok_or(Reason::StateMissing)?;
    if !policy::state::is_valid_state(state) {
        return Err(Reason::StateUnknown.into());
    }
    let cookie_name = login_cookie_name(
        &app.config.session.cookie_name,
        &state[..super::login::STATE_TAG_LEN],
        cx.secure_cookies,
    );
    let binding = respond::cookie_value(req.headers(), &cookie_name)
        .and_then(|v| policy::state::parse_login_cookie(v).map(|(_, b)| b.to_string()))
        .ok_or(Reason::StateCookieMissing)?;

    // Single use: whatever happens next, this state is gone.
    let record = app
        .logins
        .take_login(state)
        .await
        .map_err(|_| Reason::StoreUnavailable)?;
    let clear = Some(cookie_name.clone());
    let refuse = |reason: Reason| Refused {
        reason,
        detail: None,
        clear_cookie: clear.clone(),
        tid: None,
    };
    let record: LoginRecord = record.ok_or_else(|| refuse(Reason::StateUnknown))?;
    if !bool::from(record.binding.as_bytes().ct_eq(binding.as_bytes())) {
        return Err(refuse(Reason::StateCookieMismatch));
    }
    if record.portal != portal.name || record.client.as_deref() != cx.client_name(app) {
        return Err(refuse(Reason::StateUnknown));
    }
    // After the state is consumed: a leaked URL cannot be replayed either.
    if token_in_query {
        return Err(refuse(Reason::TokenInQuery));
    }

    if let Some(error) = param(&p, "error") {
        let description = param(&p, "error_description").unwrap_or("");
        let detail: String = format!("{error}: {description}").chars().take(400).collect();
        return Err(Refused {
            reason: Reason::IdpError,
            detail: Some(detail),
            clear_cookie: clear,
            tid: None,
        });
    }

    let login_tenant: Option<TenantId> = record.tenant.clone();
    let token_endpoint = app.tenants.token_endpoint(login_tenant.as_ref()).map_err(refuse)?;
    let (id_token, code) = match &record.pkce_verifier {
        Some(verifier) => {
            let code = param(&p, "code").ok_or_else(|| refuse(Reason::TokenMissing))?;
            let credential = app
                .config
                .entra
                .credential
                .as_ref()
                .ok_or_else(|| refuse(Reason::CodeExchangeFailed))?;
            let token = exchange(
                &app.http,
                CodeExchange {
                    token_endpoint: token_endpoint.as_str(),
                    client_id: app.config.entra.client_id.as_str(),
                    credential,
                    code,
                    redirect_uri: &record.redirect_uri,
                    code_verifier: verifier,
                },
            )
            .await
            .map_err(|e| {
                tracing::warn!(event = "code_exchange_failed", error = %e, error_codes = %e.error_codes());
                refuse(match e {
                    // Entra down or failing (5xx) is an outage, not a bad code:
                    // 503 with Retry-After, the user tries again.
                    ExchangeError::Unreachable(_) => Reason::MetadataUnavailable,
                    ExchangeError::Refused { status, .. } if status >= 500 => Reason::MetadataUnavailable,
                    _ => Reason::CodeExchangeFailed,
                })
            })?;
            (token, Some(code))
        }
        None => (
            param(&p, "id_token")
                .ok_or_else(|| refuse(Reason::TokenMissing))?
                .to_string(),
            None,
        ),
    };

    let tenants = app.tenants.policy();
    let expect = TokenExpectations {
        issuer_host: &app.config.entra.issuer_host,
        client_id: &app.config.entra.client_id,
        tenants: &tenants,
        login_tenant: login_tenant.as_ref(),
        nonce: &record.nonce,
        now: now_unix(),
        skew_secs: app.config.entra.clock_skew.as_secs() as i64,
    };
    // Who issued it decides, before anything is fetched for that tenant.
    let unverified = peek_claims(&id_token).map_err(refuse)?;
    let tid = check_issuer_and_tenant(&unverified, &expect).map_err(|reason| {
        let named = unverified.tid.as_deref().and_then(|t| t.parse::<TenantId>().ok());
        Refused {
            reason,
            detail: (reason == Reason::TenantNotAllowed)
                .then(|| {
                    named
                        .as_ref()
                        .map(|t| format!("Tenant {t} is not allowed to sign in here."))
                })
                .flatten(),
            clear_cookie: clear.clone(),
            tid: named.map(|t| t.to_string()),
        }
    })?;
    let jwks_uri = app.tenants.jwks_uri(&tid).map_err(refuse)?;
    let identity = validate_id_token(&app.tenants.jwks, jwks_uri.as_str(), &id_token, &expect)
        .await
        .map_err(refuse)?;
    if let (Some(code), Some(h)) = (code, unverified.c_hash.as_deref())
        && h != c_hash(code)
    {
        return Err(refuse(Reason::CHashMismatch));
    }

    let who = super::matching::resolve(app, portal.kind, &identity, &record)
        .await
        .map_err(|reason| Refused {
            reason,
            detail: None,
            clear_cookie: clear.clone(),
            tid: Some(identity.tid.to_string()),
        })?;
    let resp = create_session(app, req, cx, &record, &identity, &who, &cookie_name)
        .await
        .map_err(refuse)?;
    tracing::info!(
        event = "signin", result = "ok", portal = %portal.name, tid = %identity.tid,
        oid = %identity.oid, remember_me = record.remember_me, user = %who.user_key,
        client_ip = cx.client_ip.map(tracing::field::display), user_agent = super::user_agent(req)
    );
    Ok(resp)
}

async fn create_session(
    app: &App,
    req: &Request<Bytes>,
    cx: &RequestContext,
    record: &LoginRecord,
    id: &VerifiedIdentity,
    who: &super::matching::Resolved,
    login_cookie: &str,
) -> Result<Resp, Reason> {
    let portal = app.portal(cx.portal);
    let cfg = &app.config.session;
    let now = now_unix();
    let life = policy::lifetime::lifetimes(&app.config.sso.lifetime_settings(cfg), record.remember_me);
    let (remember, idle, absolute) = (life.remember, life.idle_secs, life.absolute_secs);
    let mfa = second_factor_at_sign_in(app, req, cx, who, now).await?;
    let csrf = random_token(24);
    let session: Session = SessionRecord {
        portal: portal.name.as_str(),
        portal_kind: portal.kind,
        tid: id.tid.clone(),
        oid: &id.oid,
        sub: &id.sub,
        issuer: &id.issuer,
        name: id.name.as_deref(),
        email: id.email.as_deref(),
        sid: id.sid.as_deref(),
        login_hint: id.login_hint.as_deref(),
        user_key: &who.user_key,
        client: record.client.as_deref(),
        created_at: now,
        last_seen: now,
        absolute_expiry: now + absolute,
        idle_timeout_secs: idle,
        remember_me: remember,
        csrf: &csrf,
        new_user: who.new_user,
        mfa,
    }
    .try_into()
    .map_err(|_| Reason::TokenMalformed)?;
    // A fresh id at every sign-in; the browser's previous session at this
    // portal, if any, ends here.
    let session_cookie = session_cookie_name(&cfg.cookie_name, &portal.name, cx.secure_cookies);
    if let Some(old) = respond::cookie_value(req.headers(), &session_cookie).and_then(SessionId::parse) {
        let _ = app.sessions.end(&[old.key()], "replaced").await;
    }
    let sid = SessionId::generate();
    app.sessions
        .create(&sid.key(), &session)
        .await
        .map_err(|_| Reason::StoreUnavailable)?;

    let mut resp = respond::redirect(303, &record.return_to);
    let max_age = remember.then_some(absolute);
    respond::add_cookie(
        &mut resp,
        &respond::cookie(
            session_cookie,
            sid.as_str().to_string(),
            cx.secure_cookies,
            SameSite::Lax,
            max_age,
        ),
    );
    respond::add_cookie(
        &mut resp,
        &respond::expired_cookie(login_cookie.to_string(), cx.secure_cookies),
    );
    // Signed in with SSO: no longer a "local account" browser.
    let local = local_cookie_name(&cfg.cookie_name, &portal.name, cx.secure_cookies);
    if respond::cookie_value(req.headers(), &local).is_some() {
        respond::add_cookie(&mut resp, &respond::expired_cookie(local, cx.secure_cookies));
    }
    Ok(resp)
}

/// Where a new session starts with the second factor: not applicable,
/// bypassed by the Entra sign-in (`bypass_with_sso`), skipped by this user's
/// valid "don't ask again" cookie, or pending (the 2FA page comes next).
async fn second_factor_at_sign_in(
    app: &App,
    req: &Request<Bytes>,
    cx: &RequestContext,
    who: &super::matching::Resolved,
    now: i64,
) -> Result<policy::two_factor::Mfa, Reason> {
    let user = who.user_key.as_str();
    use policy::two_factor::{Mfa, at_sign_in};
    let tf = &app.config.two_factor;
    let portal = &app.portal(cx.portal).name;
    if !tf.applies_to(user, who.two_factor) {
        return Ok(Mfa::None);
    }
    let cookie = policy::cookies::two_factor_cookie_name(&app.config.session.cookie_name, cx.secure_cookies);
    let remembered = match respond::cookie_value(req.headers(), &cookie) {
        Some(value) if tf.dont_ask_again && !tf.bypass_with_sso => {
            let rec = app.factors.record(user).await.map_err(|e| {
                tracing::error!(event = "two_factor", result = "store_error", error = %e);
                Reason::StoreUnavailable
            })?;
            rec.enrolled && app.factors.remembered(value, user, rec.generation, now)
        }
        _ => false,
    };
    let mfa = at_sign_in(true, tf.bypass_with_sso, remembered);
    match mfa {
        Mfa::Bypassed => crate::two_factor::outcome("bypassed", portal, user),
        Mfa::Remembered => crate::two_factor::outcome("remembered", portal, user),
        _ => crate::two_factor::outcome("required", portal, user),
    }
    Ok(mfa)
}
