//! Typed identifiers. Each is validated once, at the edge, so that the rest of the code never
//! handles a bare `String` that could smuggle `/` or `..` into a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "invalid app name {0:?}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter and not ending \
         with '-'"
    )]
    App(String),
    #[error("invalid process type {0:?}: use only letters, digits, '_' and '-'")]
    ProcessType(String),
    #[error("invalid release id {0:?}: expected v<number>, e.g. v12")]
    Release(String),
    #[error("invalid commit sha {0:?}: expected 40 hex digits")]
    Commit(String),
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr, $err:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(s) { Ok(Self(s.to_owned())) } else { Err($err(s.to_owned())) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An app's name: also its directory name, its system user's suffix and its Docker label.
    AppName,
    |s| {
        (1..=AppName::MAX_LEN).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.ends_with('-')
    },
    IdError::App
);

string_id!(
    /// A Procfile process type such as `web` or `worker`: `[A-Za-z0-9_-]+`, as Heroku allows.
    ProcessType,
    |s| !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
    IdError::ProcessType
);

string_id!(
    /// A full git commit id.
    CommitSha,
    |s| s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()),
    IdError::Commit
);

impl CommitSha {
    /// The 7-character abbreviation people read.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl AppName {
    /// The longest app name. Every name up to it can really be created: the system user's name
    /// (`users::user_name`) shortens the app name to fit useradd's 32 characters, and the error
    /// message above states this number.
    pub const MAX_LEN: usize = 30;
}

impl ProcessType {
    /// Whether this type receives `PORT` and gates the switch, as Heroku's `web` does.
    pub fn is_web(&self) -> bool {
        self.0 == "web"
    }
}

/// A release number, shown as `v<N>` like Heroku's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId(u64);

impl ReleaseId {
    /// The release with this number.
    pub fn new(n: u64) -> Self {
        Self(n)
    }
    /// The number behind the `v`.
    pub fn number(self) -> u64 {
        self.0
    }
    /// The release after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl FromStr for ReleaseId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        s.strip_prefix('v')
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .map(Self)
            .ok_or_else(|| IdError::Release(s.to_owned()))
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("v{}", self.0))
    }
}

impl Serialize for ReleaseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReleaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_that_could_escape_a_path_are_refused() {
        for bad in ["", "..", "a/b", "Demo", "-x", "x-", "1app", "a b", &"a".repeat(31)] {
            assert!(bad.parse::<AppName>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("demo-2".parse::<AppName>().unwrap().as_str(), "demo-2");
    }

    #[test]
    fn app_names_are_accepted_up_to_max_len_and_refused_beyond() {
        let at_max = format!("a{}", "b".repeat(AppName::MAX_LEN - 1));
        assert!(at_max.parse::<AppName>().is_ok());
        let over = format!("{at_max}c");
        let err = over.parse::<AppName>().unwrap_err();
        assert!(err.to_string().contains(&format!("1-{} characters", AppName::MAX_LEN)), "{err}");
    }

    #[test]
    fn process_types_follow_heroku() {
        assert!("web".parse::<ProcessType>().unwrap().is_web());
        assert!("clock_2-x".parse::<ProcessType>().is_ok());
        assert!("we b".parse::<ProcessType>().is_err());
        assert!("w.b".parse::<ProcessType>().is_err());
    }

    #[test]
    fn release_ids_round_trip() {
        let r: ReleaseId = "v12".parse().unwrap();
        assert_eq!(r.number(), 12);
        assert_eq!(r.next().to_string(), "v13");
        assert!("12".parse::<ReleaseId>().is_err());
        assert!("v0".parse::<ReleaseId>().is_err());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"v12\"");
    }
}
