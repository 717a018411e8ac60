//! API tokens: one admin token (a file in the home, mode 0600, shown once at first start and
//! again by `slipway tokens show-admin`) and app tokens, each reaching one app. App tokens are
//! stored as SHA-256 hashes only, so a copy of the home does not hand out working tokens.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ids::AppName;
use crate::state::{FileLock, Home, LockError, Wait, atomic};

/// Failures managing tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the token list {path} is corrupt; fix or delete it (every app token is then revoked)")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no app token has the id {0}; see `slipway tokens list`")]
    NoSuchToken(String),
    #[error("the admin token does not exist yet; `slipway serve` creates it at its first start")]
    NoAdmin,
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Every app, and the server itself.
    Admin,
    /// One app only.
    App(AppName),
}

impl Principal {
    /// Whether this principal may act on `app`.
    pub fn reaches(&self, app: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::App(a) => a.as_str() == app,
        }
    }
}

/// One app token as stored: never the token itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppToken {
    /// Short id for `tokens revoke` (the first 12 hex digits of the hash).
    pub id: String,
    #[schema(value_type = String)]
    pub app: AppName,
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// SHA-256 of the token, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(ignore)]
    pub hash: String,
}

/// The token files of one home: `serve/admin.token` and `serve/tokens.json`.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

/// The longest token accepted; anything longer is refused before hashing.
pub const MAX_TOKEN_LEN: usize = 256;

impl TokenStore {
    /// The store of `home` (nothing is created yet).
    pub fn new(home: &Home) -> Self {
        Self { dir: super::server::serve_dir(home) }
    }

    fn admin_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
    fn list_path(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TokenError {
        let path = path.to_owned();
        move |source| TokenError::Io { action, path, source }
    }

    /// Creates `serve/` (mode 0700) if missing.
    pub fn ensure_dir(&self) -> Result<(), TokenError> {
        fs::create_dir_all(&self.dir).map_err(Self::io("create", &self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(Self::io("chmod", &self.dir))
    }

    /// The admin token, created if missing. The flag says whether it was created now (so the
    /// caller prints it, once).
    pub fn ensure_admin(&self) -> Result<(String, bool), TokenError> {
        self.ensure_dir()?;
        let path = self.admin_path();
        if let Some(t) = self.read_admin()? {
            return Ok((t, false));
        }
        let token = new_token("slwa")?;
        // create_new: two first starts at once keep one token, the first one written.
        let created = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
        match created {
            Ok(mut f) => {
                f.write_all(format!("{token}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(Self::io("write", &path))?;
                Ok((token, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok((self.read_admin()?.ok_or(TokenError::NoAdmin)?, false))
            }
            Err(e) => Err(Self::io("create", &path)(e)),
        }
    }

    /// The admin token, if it exists.
    pub fn read_admin(&self) -> Result<Option<String>, TokenError> {
        let path = self.admin_path();
        match fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io("read", &path)(e)),
        }
    }

    /// Every app token, oldest first.
    pub fn list(&self) -> Result<Vec<AppToken>, TokenError> {
        let path = self.list_path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| TokenError::Corrupt { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Self::io("read", &path)(e)),
        }
    }

    fn save(&self, tokens: &[AppToken]) -> Result<(), TokenError> {
        let path = self.list_path();
        let mut bytes =
            serde_json::to_vec_pretty(tokens).map_err(|e| Self::io("write", &path)(io::Error::other(e)))?;
        bytes.push(b'\n');
        atomic::write_with(&path, |f| {
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&bytes)
        })
        .map_err(Self::io("write", &path))
    }

    fn lock(&self) -> Result<FileLock, TokenError> {
        self.ensure_dir()?;
        Ok(FileLock::acquire(&self.dir.join("tokens.lock"), "the token list", Wait::Yes, || {})?)
    }

    /// A new token for `app`: returned once, stored hashed.
    pub fn create(&self, app: &AppName, name: &str) -> Result<(AppToken, String), TokenError> {
        let _lock = self.lock()?;
        let token = new_token("slwp")?;
        let hash = hash_hex(&token);
        let record = AppToken {
            id: hash[..12].to_owned(),
            app: app.clone(),
            name: name.to_owned(),
            created_at: crate::state::now_unix(),
            hash,
        };
        let mut all = self.list()?;
        all.push(record.clone());
        self.save(&all)?;
        Ok((record, token))
    }

    /// Remove the app token `id`.
    pub fn revoke(&self, id: &str) -> Result<AppToken, TokenError> {
        let _lock = self.lock()?;
        let mut all = self.list()?;
        let at = all.iter().position(|t| t.id == id).ok_or_else(|| TokenError::NoSuchToken(id.to_owned()))?;
        let gone = all.remove(at);
        self.save(&all)?;
        Ok(gone)
    }

    /// Remove every token of `app` (when the app is destroyed, a token must not reach a
    /// new app that takes its name).
    pub fn revoke_app(&self, app: &AppName) -> Result<usize, TokenError> {
        if !self.list_path().exists() {
            return Ok(0);
        }
        let _lock = self.lock()?;
        let mut all = self.list()?;
        let before = all.len();
        all.retain(|t| &t.app != app);
        if all.len() != before {
            self.save(&all)?;
        }
        Ok(before - all.len())
    }

    /// Who `token` is, if anyone. Read on every request, so a revocation applies at once.
    pub fn check(&self, token: &str) -> Result<Option<Principal>, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        if let Some(admin) = self.read_admin()?
            && constant_time_eq(admin.as_bytes(), token.as_bytes())
        {
            return Ok(Some(Principal::Admin));
        }
        let hash = hash_hex(token);
        Ok(self
            .list()?
            .into_iter()
            .find(|t| constant_time_eq(t.hash.as_bytes(), hash.as_bytes()))
            .map(|t| Principal::App(t.app)))
    }
}

/// SHA-256 of `token`, hex.
pub fn hash_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A fresh token: a prefix saying what it is, then 256 random bits from the kernel.
fn new_token(prefix: &str) -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    let path = Path::new("/dev/urandom");
    fs::File::open(path).and_then(|mut f| f.read_exact(&mut bytes)).map_err(TokenStore::io("read", path))?;
    Ok(format!("{prefix}_{}", hex(&bytes)))
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_hash_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&Home::new(dir.path().to_owned()));
        let (admin, created) = store.ensure_admin().unwrap();
        assert!(created);
        assert_eq!(store.ensure_admin().unwrap(), (admin.clone(), false));
        let mode = fs::metadata(store.admin_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let app: AppName = "demo".parse().unwrap();
        let (rec, token) = store.create(&app, "ci").unwrap();
        let stored = fs::read_to_string(store.list_path()).unwrap();
        assert!(!stored.contains(&token), "the token itself is never stored");
        assert_eq!(store.check(&token).unwrap(), Some(Principal::App(app.clone())));
        assert_eq!(store.check(&admin).unwrap(), Some(Principal::Admin));
        assert_eq!(store.check("slwp_nope").unwrap(), None);
        assert_eq!(store.check(&"x".repeat(MAX_TOKEN_LEN + 1)).unwrap(), None);
        store.revoke(&rec.id).unwrap();
        assert_eq!(store.check(&token).unwrap(), None);
        assert!(matches!(store.revoke(&rec.id), Err(TokenError::NoSuchToken(_))));
    }

    #[test]
    fn app_principals_reach_only_their_app() {
        let p = Principal::App("a".parse().unwrap());
        assert!(p.reaches("a") && !p.reaches("b"));
        assert!(Principal::Admin.reaches("b"));
    }
}
