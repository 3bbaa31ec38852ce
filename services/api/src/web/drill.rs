//! A drill's mark (DESIGN.md §12, docs/drills.md): on a drill tenant every HTML page,
//! whichever route made it (the login, a role's page, the forbidden page), carries the
//! 訓練 / DRILL banner at the top of its body and 【訓練】 in its title, and every
//! response carries a `noroshi-drill` header naming the drill, so that nobody takes a
//! drill's screen or figures for production's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::escape;
pub use crate::state::DrillMark;

impl DrillMark {
    /// The banner, first in every page's body.
    fn banner(&self) -> String {
        format!(
            "<div id=\"drill-banner\" class=\"drill-banner\" role=\"note\" \
             aria-label=\"訓練 / DRILL\"><strong>訓練 / DRILL</strong> \
             <span class=\"drill-title\">{}</span> \
             <span class=\"drill-title-en\" lang=\"en\">{}</span> \
             <span class=\"drill-note\">この画面は訓練です。表示される患者・病床は本番のものではありません。\
             <span lang=\"en\">This is a drill: no patient or bed shown here is real.</span></span></div>",
            escape(&self.title),
            escape(&self.title_en),
        )
    }
}

/// Pages are made in memory and small; a larger body is left as it is.
const LARGEST_PAGE: usize = 8 * 1024 * 1024;

/// The layer that marks every response of a drill's server.
pub(crate) async fn mark(
    State(drill): State<Arc<DrillMark>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Ok(name) = HeaderValue::from_str(&drill.name) {
        response.headers_mut().insert("noroshi-drill", name);
    }
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, LARGEST_PAGE).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(error = %error, "cannot mark a page of the drill");
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let page = String::from_utf8_lossy(&bytes);
    let marked = marked(&page, &drill.banner());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(marked))
}

/// `page` with 【訓練】 first in its title and `banner` first in its body.
fn marked(page: &str, banner: &str) -> String {
    let mut page = page.replacen("<title>", "<title>【訓練】", 1);
    let body_open = page
        .find("<body")
        .and_then(|at| page[at..].find('>').map(|end| at + end + 1));
    match body_open {
        Some(at) => page.insert_str(at, banner),
        None => page.insert_str(0, banner),
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_comes_first_in_the_body_and_the_title_says_drill() {
        let drill = DrillMark {
            name: "winter".into(),
            title: "冬季<訓練>".into(),
            title_en: "Winter".into(),
        };
        let page = "<html><head><title>noroshi</title></head>\
                    <body data-page=\"hq\"><main>x</main></body></html>";
        let out = marked(page, &drill.banner());
        assert!(out.contains("<title>【訓練】noroshi</title>"), "{out}");
        let body = out.find("<body data-page=\"hq\">").expect("body kept") + 21;
        assert!(out[body..].starts_with("<div id=\"drill-banner\""), "{out}");
        assert!(out.contains("冬季&lt;訓練&gt;"), "{out}");
        assert!(out.ends_with("<main>x</main></body></html>"), "{out}");
    }
}
