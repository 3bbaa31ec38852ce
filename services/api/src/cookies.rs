//! The session cookie (docs/identity.md): HttpOnly, SameSite=Strict, Secure behind TLS.

use cookie::{Cookie, SameSite};
use noroshi_identity::IdentitySettings;

/// The `Set-Cookie` value that hands a session to the browser. Without `Max-Age` it
/// lasts until the browser closes; the server ends it earlier.
pub(super) fn set_cookie(settings: &IdentitySettings, value: &str) -> String {
    Cookie::build((settings.cookie_name(), value.to_owned()))
        .http_only(true)
        .secure(settings.secure_cookies)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub(super) fn clear_cookie(settings: &IdentitySettings) -> String {
    Cookie::build((settings.cookie_name(), ""))
        .http_only(true)
        .secure(settings.secure_cookies)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// The session cookie's value among the `Cookie` headers of a request.
pub(super) fn from_headers<'a>(
    settings: &IdentitySettings,
    headers: &'a http::HeaderMap,
) -> Option<&'a str> {
    let name = settings.cookie_name();
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| Cookie::split_parse(header).filter_map(Result::ok))
        .find(|cookie| cookie.name() == name)
        .and_then(|cookie| cookie.name_raw().and(cookie.value_raw()))
}
