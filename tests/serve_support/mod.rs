//! A running `slipway serve` for one test (its own home and port, killed on drop), and a
//! curl-based client: real HTTP, with the status beside the body.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{self, Slipway, free_port, wait_for};

/// A new app of `s` (named from `prefix`) with a soft-limited mount of `size`, destroyed with `s`.
pub fn soft_app(s: &Slipway, prefix: &str, size: &str) -> String {
    let app = common::app_name(prefix);
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    let out = s
        .cmd()
        .env("SLIPWAY_MOUNT_MODE", "soft")
        .args(["mount", "enable", &app, "--size", size])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    app
}

pub struct Server {
    pub port: u16,
    pub admin: String,
    child: Child,
}

impl Server {
    /// Start the server in the foreground of a child process and wait until it answers.
    pub fn start(s: &Slipway) -> Self {
        let port = free_port();
        let log = std::fs::File::create(s.home.path().join("serve-test.log")).unwrap();
        let child = s
            .cmd()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let admin = wait_for(Duration::from_secs(20), || {
            let out = s.run(&["tokens", "show-admin"]);
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .expect("the admin token appears");
        let up = wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
        });
        assert!(
            up.is_some(),
            "serve listens: {}",
            std::fs::read_to_string(s.home.path().join("serve-test.log")).unwrap_or_default()
        );
        Self { port, admin, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// curl `args` against `path` with `token` (if any); returns (status, body).
    pub fn curl(&self, token: Option<&str>, args: &[&str], path: &str) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "120"]);
        if let Some(t) = token {
            c.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        let out = c.args(args).arg(self.url(path)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// GET as admin; the JSON body, insisting on 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl(Some(&self.admin), &[], path);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A JSON request as `token`: (status, parsed body).
    pub fn json(&self, token: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (code, text) = self.curl(
            Some(token),
            &["-X", method, "-H", "Content-Type: application/json", "--data-binary", body],
            path,
        );
        (code, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app token for `app`.
pub fn app_token(s: &Slipway, app: &str) -> String {
    s.ok(&["tokens", "create", "--app", app, "--name", "test"]).trim().to_owned()
}
