//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message, so a
//! proxy removes them in both directions. Letting `Connection: close, X-Secret` or a client's
//! `Proxy-Authorization` through would let one hop steer or read another.

use hyper::header::{self, HeaderMap, HeaderName};

/// Always hop-by-hop, whatever `Connection` says. `Upgrade` (and `Connection: upgrade`) are
/// kept on an upgrade, which needs them end to end.
const HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("keep-alive"),
];

/// Removes the hop-by-hop headers: those `Connection` names, then the fixed ones. On an upgrade
/// `Connection: upgrade` and `Upgrade` stay. Framing (`Transfer-Encoding`) is hyper's to redo on
/// the next hop. Pure.
pub(crate) fn strip(headers: &mut HeaderMap, upgrading: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| !(upgrading && *name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP {
        headers.remove(name);
    }
    if upgrading {
        headers.insert(header::CONNECTION, header::HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn fixed_and_connection_named_headers_are_removed_and_the_rest_kept() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "3"),
            ("content-length", "4"),
        ]);
        strip(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept", "content-length"]);
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade_only() {
        let mut h =
            map(&[("connection", "Upgrade, keep-alive, x-a"), ("upgrade", "websocket"), ("x-a", "1")]);
        strip(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("x-a"));
    }
}
