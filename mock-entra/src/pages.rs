//! Entra's pages and error answers: the login form, the form_post that
//! carries a result back to the app, the error page, the "signing out" page,
//! and the token endpoint's JSON error.

use crate::state::{Inner, Params};
use crate::util::html_escape;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

/// As Entra answers: the description starts `AADSTSnnnn:` and the same
/// number is in `error_codes`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let codes: Vec<u32> = description
        .strip_prefix("AADSTS")
        .and_then(|d| d.split(':').next())
        .and_then(|n| n.parse().ok())
        .into_iter()
        .collect();
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description, "error_codes": codes })),
    )
        .into_response()
}

pub(crate) fn error_page(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>Sign in to your account</title><h1>Sorry, but we're having trouble signing you in.</h1><p id=\"error\">{}: {}</p>",
            html_escape(code),
            html_escape(text)
        )),
    )
        .into_response()
}

pub(crate) fn form_post(action: &str, fields: &[(&str, &str)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\" />",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let body = format!(
        "<html><head><title>Working...</title></head><body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">{}<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript></form><script language=\"javascript\">window.setTimeout(function(){{document.forms[0].submit()}}, 0);</script></body></html>",
        html_escape(action),
        inputs
    );
    let mut r = Html(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    r
}

pub(crate) fn login_form(s: &Inner, tenant: &str, p: &Params, message: Option<&str>) -> Response {
    let hidden: String = p
        .iter()
        .filter(|(k, _)| k.as_str() != "username")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let users: String = s
        .config
        .users
        .iter()
        .filter(|u| tenant == "organizations" || tenant == "common" || u.tenant == tenant)
        .map(|u| {
            format!(
                "<li><button type=\"submit\" name=\"username\" value=\"{0}\" class=\"pick\">{1} <small>{0}</small></button></li>",
                html_escape(&u.username),
                html_escape(&u.name)
            )
        })
        .collect();
    let msg = message
        .map(|m| format!("<p id=\"usernameError\" role=\"alert\">{}</p>", html_escape(m)))
        .unwrap_or_default();
    let action = format!("/{}/oauth2/v2.0/authorize", html_escape(tenant));
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px "Segoe UI",system-ui,sans-serif;background:#f2f2f2;display:grid;place-items:center;min-height:100vh;margin:0}}
main{{background:#fff;padding:44px;width:min(440px,92vw);box-shadow:0 2px 6px rgba(0,0,0,.2)}}h1{{font-size:24px;font-weight:600}}
input[type=email]{{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:15px}}
#idSIButton9{{background:#0067b8;color:#fff;border:0;padding:6px 24px;margin-top:16px;float:right}}ul{{list-style:none;padding:0;clear:both;padding-top:16px}}
form{{display:flow-root}}.pick{{background:none;border:0;color:#0067b8;cursor:pointer;padding:4px 0;font:inherit}}.banner{{font-size:12px;color:#a4262c}}</style></head>
<body><main><p class="banner">Mock Entra ID — for demos and tests only</p><h1>Sign in</h1>{msg}
<form method="post" action="{action}">{hidden}
<input type="email" name="username" id="i0116" placeholder="Email, phone, or Skype" aria-label="Enter your email" autofocus>
<input type="submit" id="idSIButton9" value="Next"></form>
<form method="post" action="{action}">{hidden}<p id="pick-test-account">Or pick a test account:</p><ul>{users}</ul></form></main></body></html>"#
    ))
    .into_response()
}

/// Entra's "signing out" page: one hidden iframe per app's front-channel
/// logout URL; once they have loaded (or after 5 s) it goes on to the
/// post-logout redirect URI.
pub(crate) fn end_session_page(frames: &[String], next: Option<&str>) -> String {
    let iframes: String = frames
        .iter()
        .map(|u| {
            format!(
                "<iframe class=\"fcl\" src=\"{}\" style=\"display:none\" title=\"sign out\"></iframe>",
                html_escape(u)
            )
        })
        .collect();
    let script = match next {
        Some(n) => format!(
            "<script>(function(){{var left=document.querySelectorAll('iframe.fcl').length;var go=function(){{location.replace({})}};\
             if(!left){{go();return}}document.querySelectorAll('iframe.fcl').forEach(function(f){{f.addEventListener('load',function(){{if(--left===0)go()}})}});\
             setTimeout(go,5000)}})();</script>",
            serde_json::to_string(n).expect("string").replace('<', "\\u003c")
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><title>Sign out</title><h1>You signed out of your account</h1>\
         <p>It's a good idea to close all browser windows.</p>{iframes}{script}"
    )
}
