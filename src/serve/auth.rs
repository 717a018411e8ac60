//! Every API and git request is authenticated here, once, before any handler runs: a token in
//! the `Authorization` header (Bearer, or Basic for git, whose password is the token), never a
//! cookie, so another site cannot drive a signed-in browser. The app in the path must be one
//! the token reaches. Wrong tokens are rate-limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;
use super::server::AppState;

/// Wrong tokens allowed per client address within [`WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
/// The window failed attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Failed attempts per client address.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Whether `ip` has used up its failures.
    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.get(&ip).is_some_and(|(start, n)| now.duration_since(*start) < WINDOW && *n >= MAX_FAILURES)
    }

    fn fail(&self, ip: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: a flood from many addresses cannot grow the map without end.
        if seen.len() > 10_000 {
            seen.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let e = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

/// Where the credentials were: git clients get a Basic challenge so they ask for a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Api,
    Git,
}

/// The token of a request: `Authorization: Bearer T`, or `Basic` with T as the password.
/// Malformed headers count as no token.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':').map_or(text.as_str(), |(_, p)| p).to_owned())
}

/// The app a path names: `/api/apps/{app}/...` or `/git/{app}.git/...`.
pub fn app_in_path(path: &str) -> Option<&str> {
    if let Some(rest) = path.strip_prefix("/api/apps/") {
        return Some(rest.split('/').next().unwrap_or(rest)).filter(|a| !a.is_empty());
    }
    let rest = path.strip_prefix("/git/")?;
    let first = rest.split('/').next().unwrap_or(rest);
    Some(first.strip_suffix(".git").unwrap_or(first))
}

/// The middleware in front of `/api` and `/git`.
pub async fn require_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let scheme = if req.uri().path().starts_with("/git/") { Scheme::Git } else { Scheme::Api };
    let now = Instant::now();
    if state.limiter.blocked(peer.ip(), now) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed sign-ins from {}; wait a minute and try again", peer.ip()),
        )
        .into_response();
    }
    let token = token_of(req.headers());
    let principal = match &token {
        None => None,
        Some(t) => {
            let store = state.tokens.clone();
            let t = t.clone();
            match tokio::task::spawn_blocking(move || store.check(&t)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return ApiError::internal(super::errors::chain(&e)).into_response(),
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
    };
    let Some(principal) = principal else {
        // A wrong token is a guess; a missing one is not (the sign-in page and scripts that
        // forgot the header must not lock an address out).
        if token.is_some() {
            state.limiter.fail(peer.ip(), now);
        }
        let msg = if token.is_some() {
            "the token is not valid (revoked, or mistyped); `slipway tokens list` shows app tokens"
        } else {
            "missing token: send `Authorization: Bearer TOKEN` (see `slipway tokens show-admin`)"
        };
        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg).into_response();
        if scheme == Scheme::Git {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"slipway\""));
        }
        return resp;
    };
    if let Some(app) = app_in_path(req.uri().path())
        && !principal.reaches(app)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token reaches only its own app, not {app}"),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Standard base64 (RFC 4648), padding optional; `None` on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_bearer_or_basic_password_only() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(token_of(&h).as_deref(), Some("abc"));
        // "git:tok" in base64
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic Z2l0OnRvaw=="));
        assert_eq!(token_of(&h).as_deref(), Some("tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(token_of(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("token=abc"));
        h.remove(header::AUTHORIZATION);
        assert_eq!(token_of(&h), None, "a cookie never suffices");
    }

    #[test]
    fn the_app_is_read_from_api_and_git_paths() {
        assert_eq!(app_in_path("/api/apps/demo/mount/files/x"), Some("demo"));
        assert_eq!(app_in_path("/api/apps/demo"), Some("demo"));
        assert_eq!(app_in_path("/api/apps"), None);
        assert_eq!(app_in_path("/git/demo.git/info/refs"), Some("demo"));
        assert_eq!(app_in_path("/api/session"), None);
    }

    #[test]
    fn failures_block_after_the_limit_until_the_window_passes() {
        let l = FailureLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(!l.blocked(ip, t0));
            l.fail(ip, t0);
        }
        assert!(l.blocked(ip, t0));
        assert!(!l.blocked(ip, t0 + WINDOW));
    }
}
