//! The App Manager in a real browser: headless Chromium, driven through chromedriver, against
//! the real `slipway serve` of a temp home. Each test signs in with the admin token the server
//! created, then does what a user would: clicks, types, drops files from the "desktop" (a drop
//! event whose `DataTransfer` holds real `File` objects), picks files through the file input.
//! What the page shows is checked against what the mount holds on disk.
#![allow(clippy::unwrap_used)]

mod common;
mod ui_support;

use std::time::{Duration, Instant};

use common::{Repo, Slipway, app_name};
use ui_support::{Browser, Server};

/// Opens the UI and signs in with `token`.
async fn sign_in(b: &Browser, server: &Server, token: &str) {
    b.client.goto(&server.url).await.unwrap();
    b.fill("#token", token).await;
    b.click("#signin-form button[type=submit]").await;
    b.wait("#topnav").await;
}

fn mount_status(sw: &Slipway, app: &str) -> serde_json::Value {
    serde_json::from_str(&sw.ok(&["mount", "status", app, "--json"])).unwrap()
}

/// Drops `files` (name, size in bytes, fill byte) on the explorer as a desktop drag would:
/// dragenter, dragover, then drop, with a `DataTransfer` holding real `File` objects.
async fn drop_files(b: &Browser, files: &[(&str, usize, u8)]) {
    let list = serde_json::to_string(files).unwrap();
    b.js(&format!(
        "const dt = new DataTransfer();
         for (const [name, size, fill] of {list}) dt.items.add(new File([new Uint8Array(size).fill(fill)], name));
         const zone = document.getElementById('dropzone');
         for (const type of ['dragenter', 'dragover', 'drop'])
           zone.dispatchEvent(new DragEvent(type, {{ bubbles: true, cancelable: true, dataTransfer: dt }}));"
    ))
    .await;
}

/// The used figure the explorer's usage bar shows, e.g. "1.0 MiB".
async fn shown_usage(b: &Browser) -> String {
    b.wait("#files-usage .usage-used").await.text().await.unwrap()
}

async fn row_button(b: &Browser, name: &str, label: &str) {
    b.click(&format!("#files-body tr[data-name='{name}'] button[aria-label='{label} {name}']")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_filesystem_and_file_explorer_in_the_browser() {
    let sw = Slipway::new();
    let app = app_name("ui-files");
    sw.ok(&["apps", "create", &app]);
    sw.track(&app);
    let server = Server::start(sw.home.path());
    let token = sw.ok(&["tokens", "show-admin"]).trim().to_owned();
    let b = Browser::start().await;
    sign_in_refused_then_accepted(&b, &server, &token, &app).await;

    // Find the app, go to its Persistent Filesystem tab: disabled. Edit, Enabled, 16M, Save.
    b.click(&format!("table.apps a[href='#/apps/{app}/overview']")).await;
    b.click("#tab-mount").await;
    b.wait_text("#mount-status", "Disabled").await;
    b.click("#mount-edit").await;
    b.click("#mount-enabled").await;
    b.fill("#mount-size", "16M").await;
    b.click("#mount-save").await;
    b.wait_text("#mount-status", "Enabled").await;
    let st = mount_status(&sw, &app);
    assert_eq!(st["enabled"], true, "{st}");
    assert_eq!(st["limit_bytes"], 16u64 << 20);
    b.wait_text("#mount-mode", "limit").await;

    uploads(&b, &sw, &app).await;
    file_operations(&b, &sw, &app).await;
    disable_with_the_typed_name(&b, &sw, &app).await;

    b.assert_no_page_error().await;
    b.client.clone().close().await.unwrap();
}

/// A wrong token shows the server's own message and stays on the form; the right one signs in.
async fn sign_in_refused_then_accepted(b: &Browser, server: &Server, token: &str, app: &str) {
    // Sign-in: a wrong token shows the server's own message and stays on the form.
    b.client.goto(&server.url).await.unwrap();
    b.fill("#token", "not-a-token").await;
    b.click("#signin-form button[type=submit]").await;
    let refused = b.wait("#signin-error").await.text().await.unwrap();
    assert!(refused.to_lowercase().contains("token"), "the server's message is shown: {refused:?}");
    assert!(
        b.js("return sessionStorage.getItem('slipway.token')").await.is_null(),
        "a refused token is not kept"
    );
    b.fill("#token", token).await;
    b.click("#signin-form button[type=submit]").await;
    b.wait(&format!("table.apps tr[data-app='{app}']")).await;
    let cookies = b.js("return document.cookie").await;
    assert_eq!(cookies, "", "no cookie is involved in signing in");
}

/// Drag and drop, the picker, the usage bar, the quota and cancel, checked on disk.
async fn uploads(b: &Browser, sw: &Slipway, app: &str) {
    // The explorer: empty at first.
    b.click("#mount-browse").await;
    b.wait_text("#files-body", "This folder is empty").await;
    let before = shown_usage(b).await;

    // Drag and drop from the desktop: two files, uploaded with a progress bar each.
    drop_files(b, &[("dropped.bin", 3 << 20, 7), ("notes.txt", 5, b'n')]).await;
    b.wait("#files-body tr[data-name='dropped.bin']").await;
    b.wait("#files-body tr[data-name='notes.txt']").await;
    let dropped = std::fs::read(sw.mount_dir(app).join("dropped.bin")).unwrap();
    assert_eq!(dropped.len(), 3 << 20);
    assert!(dropped.iter().all(|&x| x == 7), "the dropped bytes arrive unchanged");
    assert_eq!(std::fs::read(sw.mount_dir(app).join("notes.txt")).unwrap(), b"nnnnn");
    // The usage bar follows the upload.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = shown_usage(b).await;
    while after == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = shown_usage(b).await;
    }
    assert_ne!(after, before, "the usage bar changes after an upload");

    // File > Upload Files…: the picker's input given a real file from disk.
    let local = tempfile::tempdir().unwrap();
    let picked = local.path().join("picked.csv");
    std::fs::write(&picked, "x,y\n1,2\n").unwrap();
    let input = b.css("#upload-input").await;
    input.send_keys(picked.to_str().unwrap()).await.unwrap();
    b.wait("#files-body tr[data-name='picked.csv']").await;
    assert_eq!(std::fs::read_to_string(sw.mount_dir(app).join("picked.csv")).unwrap(), "x,y\n1,2\n");

    // Past the quota: refused, shown inline on the upload's row; nothing left behind; the
    // explorer keeps working.
    drop_files(b, &[("too-big.bin", 20 << 20, 1)]).await;
    let failed = b.wait(".upload[data-state=failed] .upload-status").await.text().await.unwrap();
    assert!(
        failed.contains("limit") || failed.contains("quota") || failed.contains("space"),
        "quota message shown: {failed:?}"
    );
    assert!(!sw.mount_dir(app).join("too-big.bin").exists(), "a refused upload leaves nothing");
    let leftovers: Vec<_> = std::fs::read_dir(sw.mount_dir(app))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("too-big"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file remains: {leftovers:?}");

    // Cancel: an upload aborted as it starts is marked cancelled and leaves nothing behind.
    b.js("const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(6 << 20)], 'cancelled.bin'));
          document.getElementById('dropzone').dispatchEvent(
            new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
          document.querySelector(\".upload[data-path='cancelled.bin'] button\").click();")
        .await;
    b.wait_text(".upload[data-path='cancelled.bin'] .upload-status", "cancelled").await;
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(sw.mount_dir(app))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lost+found")
            .collect();
        v.sort();
        v
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while names() != ["dropped.bin", "notes.txt", "picked.csv"] && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        names(),
        ["dropped.bin", "notes.txt", "picked.csv"],
        "a cancelled upload leaves no file, no temp file"
    );
}

/// New folder, download, rename, delete (with its confirmation).
async fn file_operations(b: &Browser, sw: &Slipway, app: &str) {
    // New folder, through the File menu.
    b.click("#file-menu-button").await;
    b.click("#menu-new-folder").await;
    b.fill("#new-folder-name", "reports").await;
    b.click("#dialog-ok").await;
    b.wait("#files-body tr[data-name='reports'][data-kind='dir']").await;
    assert!(sw.mount_dir(app).join("reports").is_dir());

    // Download: the browser saves the file's bytes.
    row_button(b, "notes.txt", "Download").await;
    let saved = b.downloaded("notes.txt").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&saved).unwrap_or_default() != b"nnnnn" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read(&saved).unwrap(), b"nnnnn");

    // Export as tar.gz (a standard archive), then Import Archive… of another one.
    b.click("#file-menu-button").await;
    b.click("#menu-export").await;
    let tarball = b.downloaded(&format!("{app}-mount.tar.gz")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let out = std::process::Command::new("tar").arg("tzf").arg(&tarball).output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if (out.status.success() && listed.contains("notes.txt")) || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        listed.contains("notes.txt") && listed.contains("dropped.bin"),
        "the export holds the files:\n{listed}"
    );
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("restored")).unwrap();
    std::fs::write(src.path().join("restored/back.txt"), "back").unwrap();
    let archive = src.path().join("backup.tar.gz");
    let made = std::process::Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(src.path())
        .arg("restored")
        .status()
        .unwrap();
    assert!(made.success());
    b.css("#import-input").await.send_keys(archive.to_str().unwrap()).await.unwrap();
    b.wait_text("#files-notice", "Imported backup.tar.gz").await;
    b.wait("#files-body tr[data-name='restored'][data-kind='dir']").await;
    assert_eq!(std::fs::read_to_string(sw.mount_dir(app).join("restored/back.txt")).unwrap(), "back");

    // Rename, from the keyboard: the dialog is prefilled, a taken name is refused inline.
    let mnt = sw.mount_dir(app);
    let bytes = std::fs::read(mnt.join("dropped.bin")).unwrap();
    row_button(b, "dropped.bin", "Rename").await;
    b.wait("#rename-name").await;
    let prefilled = b.js("return document.getElementById('rename-name').value").await;
    assert_eq!(prefilled, serde_json::json!("dropped.bin"), "the dialog shows the current name");
    b.fill("#rename-name", "notes.txt").await;
    b.click("#dialog-ok").await;
    b.wait_text("#dialog-error", "already exists").await;
    assert_eq!(std::fs::read(mnt.join("notes.txt")).unwrap(), b"nnnnn", "a refused rename replaces nothing");
    b.fill("#rename-name", "renamed.bin\u{E007}").await; // Enter submits
    b.wait("#files-body tr[data-name='renamed.bin']").await;
    b.wait_gone("#files-body tr[data-name='dropped.bin']").await;
    assert_eq!(std::fs::read(mnt.join("renamed.bin")).unwrap(), bytes, "the bytes moved under the new name");
    assert!(!mnt.join("dropped.bin").exists());

    // A file that changed meanwhile (rewritten behind the explorer's back after it was
    // listed) is not deleted: the explorer says so inline, and works again after a reload.
    std::fs::write(mnt.join("picked.csv"), "x,y\n1,2\n3,4\n").unwrap();
    row_button(b, "picked.csv", "Delete").await;
    b.click("#dialog-ok").await;
    b.wait_text("#files-error", "changed meanwhile").await;
    assert_eq!(
        std::fs::read_to_string(mnt.join("picked.csv")).unwrap(),
        "x,y\n1,2\n3,4\n",
        "nothing deleted"
    );
    b.click("#files-reload").await;
    b.wait_gone("#files-error").await;

    // Delete, with confirmation: cancelling keeps the file, confirming removes it.
    row_button(b, "picked.csv", "Delete").await;
    b.click("#dialog-cancel").await;
    assert!(sw.mount_dir(app).join("picked.csv").exists(), "cancel deletes nothing");
    row_button(b, "picked.csv", "Delete").await;
    b.wait_text("#dialog-body", "picked.csv").await;
    b.click("#dialog-ok").await;
    b.wait_gone("#files-body tr[data-name='picked.csv']").await;
    assert!(!sw.mount_dir(app).join("picked.csv").exists());
    b.wait_gone(".upload[data-state=uploading]").await;
    b.screenshot("explorer").await;
}

/// Disabling shows what will be deleted, offers an export, and wants the app's name typed.
async fn disable_with_the_typed_name(b: &Browser, sw: &Slipway, app: &str) {
    // Disabling: shows what will be deleted, offers an export, wants the name typed.
    b.click("#tab-mount").await;
    b.wait_text("#mount-status", "Enabled").await;
    b.screenshot("persistent-filesystem").await;
    b.click("#mount-edit").await;
    b.click("#mount-disabled").await;
    let doomed = b.wait("#mount-will-delete").await.text().await.unwrap();
    assert!(doomed.contains("3 files"), "the files to be deleted are counted: {doomed:?}");
    b.wait("#mount-export").await;
    let save = b.css("#mount-save").await;
    assert!(!save.is_enabled().await.unwrap(), "Save waits for the typed confirmation");
    b.fill("#mount-confirm", "wrong-name").await;
    assert!(!save.is_enabled().await.unwrap(), "a wrong name does not confirm");
    assert!(sw.mount_dir(app).join("notes.txt").exists());
    b.fill("#mount-confirm", app).await;
    assert!(save.is_enabled().await.unwrap());
    save.click().await.unwrap();
    b.wait_text("#mount-status", "Disabled").await;
    assert_eq!(mount_status(sw, app)["enabled"], false);
    assert!(!sw.mount_dir(app).join("notes.txt").exists(), "disabling deleted the files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_from_the_browser_streams_its_log() {
    let sw = Slipway::new();
    let app = sw.app("ui-deploy");
    let repo = Repo::from_fixture("seed-demo");
    let server = Server::start(sw.home.path());
    let token = sw.ok(&["tokens", "show-admin"]).trim().to_owned();
    let b = Browser::start().await;
    sign_in(&b, &server, &token).await;

    b.click(&format!("table.apps a[href='#/apps/{app}/overview']")).await;
    b.wait_text("#deploy-form", "Deploy").await;
    b.fill("#deploy-repo", repo.path()).await;
    b.fill("#deploy-rev", "main").await;
    b.click("#deploy-start").await;

    // The log fills while the deploy still runs: it is streamed, not sent at the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut streamed = false;
    loop {
        let status = b.css("#deploy-status").await.text().await.unwrap();
        let log = b.css("#deploy-log").await.text().await.unwrap();
        if status.starts_with("Deploying") && !log.trim().is_empty() {
            streamed = true;
        }
        if !status.starts_with("Deploying") {
            assert!(status.starts_with("Deployed"), "the deploy succeeds: {status}\n{log}");
            assert!(log.contains("predeploy: data.csv has"), "the predeploy's output is in the log:\n{log}");
            assert!(!log.contains("{\"line\""), "the log shows the lines, not the stream's framing:\n{log}");
            break;
        }
        assert!(Instant::now() < deadline, "the deploy did not finish within 120 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(streamed, "the log showed lines before the deploy finished");
    assert_eq!(sw.release(&app), "v1", "the CLI sees the release the browser deployed");

    // The overview shows the release and its processes.
    b.wait_text("section[aria-labelledby=h-releases]", "v1").await;
    b.wait_text("section[aria-labelledby=h-procs]", "worker.1").await;
    b.screenshot("overview").await;

    // Logs: the worker's live output, filtered by type.
    b.click("#tab-logs").await;
    b.wait("#logs-type option[value=worker]").await;
    b.js("const s = document.getElementById('logs-type'); s.value = 'worker'; s.dispatchEvent(new Event('change'));")
        .await;
    b.wait_text("#logs-out", "appended a line").await;
    let out = b.css("#logs-out").await.text().await.unwrap();
    assert!(!out.contains("web."), "filtered to the worker:\n{out}");

    // The apps list shows the release, commit, process states, URL and mount usage.
    b.click("#topnav a[href='#/apps']").await;
    b.wait_text(&format!("table.apps tr[data-app='{app}']"), "v1").await;
    b.wait_text(&format!("table.apps tr[data-app='{app}']"), "up").await;
    b.screenshot("apps").await;

    // Back on the app, the last deploy's log is still shown.
    b.click(&format!("table.apps a[href='#/apps/{app}/overview']")).await;
    b.wait_text("#deploy-log", "predeploy: data.csv has").await;
    b.wait_text("#deploy-status", "Last deploy").await;

    b.assert_no_page_error().await;
    b.client.clone().close().await.unwrap();
}
