//! The browser tests' harness: headless Chromium driven through chromedriver (`WebDriver`), and
//! the real `slipway serve` on a free port of a temp home. Both processes are started in their
//! own process groups and killed with them on drop, so nothing outlives a failed test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

/// A child process whose whole process group is killed on drop.
pub struct Group(pub Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `127.0.0.1:port` accepts connections.
fn wait_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on port {port}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `slipway serve` of a home, listening on a free port.
pub struct Server {
    pub url: String,
    _proc: Group,
}

impl Server {
    pub fn start(home: &Path) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("--home")
            .arg(home)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("SLIPWAY_HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap();
        wait_port(port, "slipway serve", &mut child);
        Self { url: format!("http://127.0.0.1:{port}"), _proc: Group(child) }
    }
}

/// Headless Chromium through chromedriver, with downloads going to `downloads`.
pub struct Browser {
    pub client: Client,
    pub downloads: tempfile::TempDir,
    _driver: Group,
}

impl Browser {
    pub async fn start() -> Self {
        let driver = which::which("chromedriver").unwrap_or_else(|_| {
            panic!(
                "chromedriver is not installed: apt-get install -y chromium chromium-driver (.ci/run does)"
            )
        });
        let port = free_port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        wait_port(port, "chromedriver", &mut child);
        let driver = Group(child);
        let downloads = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                // Chromium runs as root here, which its sandbox refuses.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,900", "--force-device-scale-factor=1"],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let Value::Object(caps) = caps else { unreachable!("the capabilities are a JSON object") };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a Chromium session");
        Self { client, downloads, _driver: driver }
    }

    pub async fn css(&self, selector: &str) -> Element {
        self.client.find(Locator::Css(selector)).await.unwrap_or_else(|e| panic!("no {selector}: {e}"))
    }

    /// Waits (up to 30 s) for an element matching `selector` to exist and be displayed.
    pub async fn wait(&self, selector: &str) -> Element {
        self.wait_until(selector, |_| true).await
    }

    /// Waits (up to 60 s) for a displayed element matching `selector` whose text passes `ok`.
    pub async fn wait_until(&self, selector: &str, ok: impl Fn(&str) -> bool) -> Element {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            for el in self.client.find_all(Locator::Css(selector)).await.unwrap_or_default() {
                if el.is_displayed().await.unwrap_or(false) {
                    let text = el.text().await.unwrap_or_default();
                    if ok(&text) {
                        return el;
                    }
                    last = text;
                }
            }
            if Instant::now() > deadline {
                let fatal = self.js("return document.getElementById('fatal-text').textContent").await;
                panic!("timed out waiting for {selector} (last text: {last:?}; page error: {fatal})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `text` appears in an element matching `selector`.
    pub async fn wait_text(&self, selector: &str, text: &str) -> Element {
        self.wait_until(selector, |t| t.contains(text)).await
    }

    /// Waits until no displayed element matching `selector` exists.
    pub async fn wait_gone(&self, selector: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut shown = false;
            for el in self.client.find_all(Locator::Css(selector)).await.unwrap_or_default() {
                shown |= el.is_displayed().await.unwrap_or(false);
            }
            if !shown {
                return;
            }
            assert!(Instant::now() < deadline, "{selector} is still shown after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, selector: &str) {
        self.wait(selector).await.click().await.unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Clears an input and types `text` into it.
    pub async fn fill(&self, selector: &str, text: &str) {
        let el = self.wait(selector).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The page-wide error banner, which must stay hidden: a JS error is a test failure.
    pub async fn assert_no_page_error(&self) {
        let v = self
            .js("const f = document.getElementById('fatal'); return f.hidden ? null : f.textContent")
            .await;
        assert!(v.is_null(), "the page reported an error: {v}");
    }

    /// Saves a PNG screenshot as `tests/screenshots/NAME.png` (committed, shown in the README).
    pub async fn screenshot(&self, name: &str) {
        self.js("window.scrollTo(0, 0)").await;
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for a finished download named `name` and returns its path.
    pub async fn downloaded(&self, name: &str) -> PathBuf {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{name} was not downloaded within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        path
    }
}
