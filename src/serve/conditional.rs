//! Conditional requests on the mount's files (RFC 9110 §13): `ETag`s from [`Version`]s, and
//! `If-Match` / `If-None-Match` read into a [`Precondition`] that the mount checks under its
//! edit lock, so that an edit based on a stale listing answers 412 and changes nothing.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::errors::ApiError;
use crate::mount::{Precondition, Version};

/// The `ETag` of a version: a strong entity tag, `"…"`.
pub fn etag(v: &Version) -> String {
    format!("\"{v}\"")
}

/// The `ETag` header value of a version.
pub fn etag_header(v: &Version) -> HeaderValue {
    // A version is made of `[0-9a-f.-]`: always a valid header value.
    HeaderValue::from_str(&etag(v)).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// One entity tag of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    pub tag: String,
}

/// `*`, or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    Any,
    List(Vec<EntityTag>),
}

impl Tags {
    /// Strong comparison (`If-Match`, `If-Range`): a weak tag never matches.
    fn strong_match(&self, current: Option<&Version>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::List(l), Some(v)) => {
                let v = v.to_string();
                l.iter().any(|t| !t.weak && t.tag == v)
            }
        }
    }
    /// Weak comparison (`If-None-Match`).
    fn weak_match(&self, current: Option<&Version>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::List(l), Some(v)) => {
                let v = v.to_string();
                l.iter().any(|t| t.tag == v)
            }
        }
    }
}

/// Parse the value of an `If-Match` or `If-None-Match` header. Pure.
pub fn parse_tags(value: &str) -> Result<Tags, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(Tags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(inner) = quoted.strip_prefix('"') else {
            return Err(format!("expected a quoted entity tag (\"…\") at {rest:?}"));
        };
        let Some(end) = inner.find('"') else {
            return Err(format!("the entity tag at {rest:?} has no closing quote"));
        };
        let tag = &inner[..end];
        if tag.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return Err(format!("the entity tag {tag:?} holds a space or a control character"));
        }
        tags.push(EntityTag { weak, tag: tag.to_owned() });
        rest = &inner[end + 1..];
        let after = rest.trim_start_matches([' ', '\t']);
        if !after.is_empty() && !after.starts_with(',') {
            return Err(format!("expected a comma after the entity tag {tag:?}"));
        }
        rest = after;
    }
    if tags.is_empty() {
        return Err("it is empty; give * or one or more quoted entity tags".to_owned());
    }
    Ok(Tags::List(tags))
}

/// A request's `If-Match` and `If-None-Match`, as a [`Precondition`] on the entry it edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

impl Conditions {
    /// Read from the request's headers; a malformed one is a 400 that changes nothing.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let read = |name: header::HeaderName| -> Result<Option<Tags>, ApiError> {
            let values: Vec<&HeaderValue> = headers.get_all(&name).iter().collect();
            if values.is_empty() {
                return Ok(None);
            }
            let mut joined = String::new();
            for v in values {
                let text = v.to_str().map_err(|_| bad(&name, "it is not ASCII text"))?;
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(text);
            }
            parse_tags(&joined).map(Some).map_err(|why| bad(&name, &why))
        };
        Ok(Self { if_match: read(header::IF_MATCH)?, if_none_match: read(header::IF_NONE_MATCH)? })
    }

    /// Whether a read (`GET`) may answer 304 Not Modified: `If-None-Match` matches.
    pub fn not_modified(&self, current: &Version) -> bool {
        self.if_match.is_none() && self.if_none_match.as_ref().is_some_and(|t| t.weak_match(Some(current)))
    }

    /// Whether a read must answer 412: `If-Match` is given and does not match.
    pub fn read_refused(&self, current: &Version) -> bool {
        self.if_match.as_ref().is_some_and(|t| !t.strong_match(Some(current)))
    }
}

fn bad(name: &header::HeaderName, why: &str) -> ApiError {
    ApiError::bad_request(
        "bad_precondition",
        format!("the {name} header is malformed: {why}; nothing was changed"),
    )
}

impl Precondition for Conditions {
    /// RFC 9110 §13.2.2: `If-Match` first, then `If-None-Match`, both on the current entry.
    fn holds(&self, current: Option<&Version>) -> bool {
        self.if_match.as_ref().is_none_or(|t| t.strong_match(current))
            && self.if_none_match.as_ref().is_none_or(|t| !t.weak_match(current))
    }
    fn is_unconditional(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }
}

/// Whether an `If-Range` value lets a `Range` apply to `current` (strong comparison; a date is
/// never strong enough for us, so the whole file is sent).
pub fn range_applies(if_range: Option<&str>, current: &Version) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) => {
            v.strip_prefix('"').and_then(|r| r.strip_suffix('"')).is_some_and(|t| t == current.to_string())
        }
    }
}

/// 412, for a read whose `If-Match` failed.
pub fn precondition_failed(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "changed",
        format!("{path:?} changed meanwhile (its ETag no longer matches If-Match); reload it and try again"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> EntityTag {
        EntityTag { weak: false, tag: t.to_owned() }
    }

    #[test]
    fn entity_tag_lists_parse_as_rfc_9110_writes_them() {
        assert_eq!(parse_tags("*"), Ok(Tags::Any));
        assert_eq!(parse_tags("\"a\""), Ok(Tags::List(vec![tag("a")])));
        assert_eq!(
            parse_tags(" \"a\" , W/\"b\",\"\""),
            Ok(Tags::List(vec![tag("a"), EntityTag { weak: true, tag: "b".into() }, tag("")]))
        );
        for bad in ["", "a", "\"a", "\"a\" \"b\"", "W/a", "\"a b\"", ","] {
            assert!(parse_tags(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_match_is_strong_and_if_none_match_star_means_absent() {
        let v = Version::new(1, 2, 3, 4);
        let other = Version::new(1, 2, 3, 5);
        let quoted = etag(&v);
        let with = |m: Option<&str>, n: Option<&str>| Conditions {
            if_match: m.map(|s| parse_tags(s).unwrap()),
            if_none_match: n.map(|s| parse_tags(s).unwrap()),
        };
        assert!(with(None, None).is_unconditional());
        assert!(with(Some(&quoted), None).holds(Some(&v)));
        assert!(!with(Some(&quoted), None).holds(Some(&other)), "changed meanwhile");
        assert!(!with(Some(&quoted), None).holds(None), "removed meanwhile");
        assert!(
            !with(Some(&format!("W/{quoted}")), None).holds(Some(&v)),
            "a weak tag never matches If-Match"
        );
        assert!(with(Some("*"), None).holds(Some(&v)) && !with(Some("*"), None).holds(None));
        assert!(with(None, Some("*")).holds(None), "create only if absent");
        assert!(!with(None, Some("*")).holds(Some(&v)), "created meanwhile");
        assert!(!with(None, Some(&quoted)).holds(Some(&v)));
        assert!(with(None, Some(&quoted)).holds(Some(&other)));
        assert!(
            with(None, Some(&quoted)).not_modified(&v) && !with(None, Some(&quoted)).not_modified(&other)
        );
        assert!(with(Some("\"nope\""), None).read_refused(&v) && !with(Some(&quoted), None).read_refused(&v));
    }

    #[test]
    fn if_range_needs_the_current_strong_tag() {
        let v = Version::new(1, 2, 3, 4);
        assert!(range_applies(None, &v));
        assert!(range_applies(Some(&etag(&v)), &v));
        assert!(!range_applies(Some("\"old\""), &v));
        assert!(!range_applies(Some("Wed, 21 Oct 2015 07:28:00 GMT"), &v));
    }
}
