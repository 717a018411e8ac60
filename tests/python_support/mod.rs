//! The seed's Dash app (fixtures/apps/seed-dash) deployed with the `slipway/python` buildpack,
//! proved the same way on every runtime: the Dash endpoints through the app's stable address,
//! the worker's rows and the predeploy's file in the mount, the venv layer reused while the
//! requirements are unchanged, rebuilt when they change, and a failed install that leaves the
//! old release serving.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{Repo, Slipway, describe, wait_for};

/// The callback of app.py: one click on "Get Data" fills `rows` and `graph`.
const CALLBACK: &str = r#"{"output":"..rows.children...graph.figure..","outputs":[{"id":"rows","property":"children"},{"id":"graph","property":"figure"}],"inputs":[{"id":"get-data","property":"n_clicks","value":1}],"changedPropIds":["get-data.n_clicks"]}"#;

/// One HTTP/1.0 request to 127.0.0.1:`port`; `(status, body)`.
pub fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// The callback's `rows` text through the router once the worker has written `min` rows:
/// `(worker rows, predeploy rows)`.
pub fn callback_rows(port: u16, min: u64) -> (u64, u64) {
    let mut last = String::new();
    let got = wait_for(Duration::from_secs(90), || {
        let (code, body) = request(port, "POST", "/_dash-update-component", CALLBACK).ok()?;
        last = format!("{code} {}", &body[..body.len().min(400)]);
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        assert!(v["response"]["graph"]["figure"]["data"].is_array(), "the figure is a plotly figure: {body}");
        let text = v["response"]["rows"]["children"].as_str()?.to_owned();
        // "worker rows: N; predeploy rows: M"
        let nums: Vec<u64> =
            text.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
        (nums.len() == 2 && nums[0] >= min).then(|| (nums[0], nums[1]))
    });
    got.unwrap_or_else(|| panic!("the callback never showed {min} worker rows; last answer: {last}"))
}

/// `key = "value"` from a layer's TOML.
pub fn toml_value(toml: &str, key: &str) -> String {
    let v: toml::Table = toml.parse().unwrap_or_else(|e| panic!("venv.toml: {e}\n{toml}"));
    v["metadata"][key].as_str().unwrap_or_else(|| panic!("no metadata.{key} in\n{toml}")).to_owned()
}

/// Deploys seed-dash and proves everything in the module docs. `venv_toml` reads the current
/// release's `venv.toml` of the python buildpack. Returns the repository, at the failed
/// install's commit: its parent holds the requirements the serving release was built from.
pub fn seed_dash_scenario(sw: &Slipway, app: &str, venv_toml: &dyn Fn() -> String) -> Repo {
    let repo = Repo::from_fixture("seed-dash");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cold deploy: {}", describe(&out));
    assert!(stderr.contains("slipway/python"), "the python buildpack ran: {stderr}");
    let port = sw.router_port(app);

    // Dash answers through the stable address: the layout, and a callback reading the mount.
    let (code, layout) = request(port, "GET", "/_dash-layout", "").unwrap();
    assert_eq!(code, 200, "{layout}");
    assert!(layout.contains("get-data") && layout.contains("dash_core_components"), "{layout}");
    let (_, predeploy_rows) = callback_rows(port, 2);
    assert_eq!(predeploy_rows, 3, "the predeploy's pandas CSV is in ../mount");

    let first = venv_toml();
    assert_eq!(toml_value(&first, "last_build"), "installed", "{first}");
    let installed_at = toml_value(&first, "installed_at");

    // A code-only change: the venv layer comes back as it was, and pip does not run.
    repo.write("app.py", &(std::fs::read_to_string(repo.path().to_owned() + "/app.py").unwrap() + "# v2\n"));
    repo.commit("code only");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "warm deploy: {}", describe(&out));
    assert!(stderr.contains("venv reused, pip not run"), "{stderr}");
    assert!(!stderr.contains("Collecting "), "pip ran: {stderr}");
    let second = venv_toml();
    assert_eq!(toml_value(&second, "last_build"), "reused", "{second}");
    assert_eq!(toml_value(&second, "installed_at"), installed_at, "the same install");
    let (rows, _) = callback_rows(port, 1);
    assert!(rows >= 1);

    // A requirements change rebuilds the venv.
    let reqs = std::fs::read_to_string(repo.path().to_owned() + "/requirements.txt").unwrap();
    repo.write("requirements.txt", &(reqs.clone() + "itsdangerous==2.2.0\n"));
    repo.commit("one more requirement");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    assert!(out.status.success(), "requirements change: {}", describe(&out));
    let third = venv_toml();
    assert_eq!(toml_value(&third, "last_build"), "installed", "{third}");
    assert_ne!(toml_value(&third, "installed_at"), installed_at, "pip ran again");
    callback_rows(port, 1);
    let serving = sw.release(app);

    // A failing install fails the build with pip's own words; the running release keeps serving.
    repo.write("requirements.txt", &(reqs + "slipway-no-such-package-anywhere==0.0.1\n"));
    repo.commit("broken requirement");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a failing install fails the deploy");
    assert!(stderr.contains("slipway-no-such-package-anywhere"), "pip's last lines are shown: {stderr}");
    assert!(stderr.contains("pip install from requirements.txt failed"), "{stderr}");
    assert!(stderr.contains("build"), "it failed in the build phase: {stderr}");
    assert_eq!(sw.release(app), serving, "the old release is still current");
    callback_rows(port, 1);
    repo
}
