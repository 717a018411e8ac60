//! A stopped build container's changes as one image layer, tarred from the overlay upper
//! directory and loaded with its image's layers as blank entries (as [`super::relabel`] loads
//! a config alone). On fuse-overlayfs `docker commit` diffs by walking the whole image tree:
//! about 6 s for a warm build that changed a few kilobytes on top of a venv. The upper
//! directory holds exactly those kilobytes.
//!
//! The tar follows the image spec's layer format: fuse-overlayfs marks a deleted file with a
//! 0/0 character device (written as `.wh.NAME`) and a directory made anew with
//! `.wh..wh..opq` (kept: an opaque directory). Anything the format would carry differently
//! from a commit (extended attributes, sockets, fifos, devices) or a layer over
//! [`MAX_BYTES`] makes [`write_layer`] answer `None`, and the caller commits as before. The
//! archive is staged in an anonymous temp file, the layer tar streamed straight into it, and
//! streamed to the engine from there, never held in memory.
//!
//! The walk reads, as root, what the build's own code wrote: the container is stopped first
//! (nothing changes underneath), no link is followed, and files open with `O_NOFOLLOW`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A bigger layer is left to the engine's commit. A load unpacks the archive once more before
/// it applies the layer: for a cold build's venv (hundreds of MB) that took 21 s here against
/// the commit's 15 s. And file times read from the upper directory of a build that wrote that
/// much can differ from what fuse-overlayfs showed the build (a `.py` a second newer than its
/// `.pyc` records), so the first import in the image writes a fresh `.pyc`.
pub const MAX_BYTES: u64 = 64 << 20;

/// The layer written: its digest (`sha256:…` of the uncompressed tar) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The diff id.
    pub diff_id: String,
    /// Bytes of tar.
    pub size: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the layer tar of the changes under `upper` into `out`; `None` if a commit must
/// make it (what was written is then of no use).
pub fn write_layer<W: Write>(upper: &Path, out: W) -> std::io::Result<Option<LayerInfo>> {
    let mut builder = tar::Builder::new(Hashing { inner: out, hash: Sha256::new(), size: 0 });
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut bytes = 0u64;
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let mut names: Vec<_> = std::fs::read_dir(upper.join(&rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        // Children are pushed in reverse so that they come off the stack in order, each
        // directory's entry written before what is in it.
        let mut subdirs = Vec::new();
        for name in names {
            let path = rel.join(&name);
            let full = upper.join(&path);
            let meta = std::fs::symlink_metadata(&full)?;
            if has_foreign_xattrs(&full)? {
                return Ok(None);
            }
            let kind = meta.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_mode(meta.mode() & 0o7777);
            header.set_uid(u64::from(meta.uid()));
            header.set_gid(u64::from(meta.gid()));
            header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
            if kind.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &path, std::io::empty())?;
                subdirs.push(path);
            } else if kind.is_symlink() {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &path, std::fs::read_link(&full)?)?;
            } else if kind.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        builder.append_link(&mut header, &path, first)?;
                        continue;
                    }
                    links.insert((meta.dev(), meta.ino()), path.clone());
                }
                bytes += meta.len();
                if bytes > MAX_BYTES {
                    return Ok(None);
                }
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
                    .open(&full)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                builder.append_data(&mut header, &path, file.take(meta.len()))?;
            } else if is_whiteout(&meta) {
                // fuse-overlayfs's own mark inside an opaque directory carries nothing more.
                if name == ".wh..opq" {
                    continue;
                }
                let mut marked = std::ffi::OsString::from(".wh.");
                marked.push(&name);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                header.set_size(0);
                builder.append_data(&mut header, rel.join(marked), std::io::empty())?;
            } else {
                return Ok(None);
            }
        }
        dirs.extend(subdirs.into_iter().rev());
    }
    let mut written = builder.into_inner()?;
    written.flush()?;
    Ok(Some(LayerInfo { diff_id: format!("sha256:{:x}", written.hash.finalize()), size: written.size }))
}

/// A 0/0 character device: overlay's deleted-file mark.
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether `path` has extended attributes other than the overlay's own bookkeeping: a layer
/// tar written here would drop them, where a commit keeps them.
fn has_foreign_xattrs(path: &Path) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut buf) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(false),
        Err(rustix::io::Errno::RANGE) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let ours =
        |name: &[u8]| name.starts_with(b"user.fuseoverlayfs.") || name.starts_with(b"trusted.overlay.");
    Ok(buf[..n].split(|b| *b == 0).any(|name| !name.is_empty() && !ours(name)))
}

/// The image config to load: the container's config (what a commit starts from) with
/// `changes` applied as a commit applies its own, on the base image's layers plus `layer`.
pub fn image_config(
    base: &bollard::models::ImageInspect,
    container: &bollard::models::ContainerConfig,
    changes: &bollard::models::ContainerConfig,
    diff_id: &str,
    created: &str,
) -> Option<Vec<u8>> {
    let mut diff_ids = base.root_fs.as_ref()?.layers.clone()?;
    diff_ids.push(diff_id.to_owned());
    let config = committed_config(container, changes);
    let doc = json!({
        "architecture": base.architecture.clone().unwrap_or_else(|| "amd64".into()),
        "os": base.os.clone().unwrap_or_else(|| "linux".into()),
        "created": created,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    serde_json::to_vec(&doc).ok()
}

/// The engine's merge of a commit's config with the container's: a field the commit sets
/// wins; environment variables and labels it does not name are kept from the container.
fn committed_config(
    container: &bollard::models::ContainerConfig,
    changes: &bollard::models::ContainerConfig,
) -> Value {
    let mut merged = container.clone();
    if changes.entrypoint.is_some() {
        merged.entrypoint.clone_from(&changes.entrypoint);
    }
    if changes.cmd.is_some() {
        merged.cmd.clone_from(&changes.cmd);
    }
    if changes.working_dir.is_some() {
        merged.working_dir.clone_from(&changes.working_dir);
    }
    if changes.user.is_some() {
        merged.user.clone_from(&changes.user);
    }
    if let Some(env) = &changes.env {
        let key = |e: &String| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_owned());
        let mut all = env.clone();
        for old in container.env.iter().flatten() {
            if !env.iter().any(|e| key(e) == key(old)) {
                all.push(old.clone());
            }
        }
        merged.env = Some(all);
    }
    if let Some(labels) = &changes.labels {
        let mut all = container.labels.clone().unwrap_or_default();
        all.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged.labels = Some(all);
    }
    let mut value = serde_json::to_value(merged).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        // The container's own name for its image and host: a commit drops the image name.
        obj.remove("Image");
    }
    value
}

/// What the archive's image is made of, but for its new layer's digest.
pub struct ArchiveParts<'a> {
    /// The image the container was created from.
    pub base: &'a bollard::models::ImageInspect,
    /// The container's config.
    pub container: &'a bollard::models::ContainerConfig,
    /// What the commit would set.
    pub changes: &'a bollard::models::ContainerConfig,
    /// The tag.
    pub tag: &'a str,
    /// The creation time (RFC 3339).
    pub created: &'a str,
}

/// Writes into `file` (empty, at its start) a `docker save`-format archive of the image: the
/// layer tar of `upper` streamed straight in as `layer.tar` (its header written once its size
/// is known), a blank entry per base layer, the config and the manifest. Returns the config
/// (whose digest is the image id), or `None` if a commit must make the image.
pub fn write_archive(
    upper: &Path,
    file: &mut std::fs::File,
    parts: &ArchiveParts<'_>,
) -> std::io::Result<Option<Vec<u8>>> {
    const BLOCK: u64 = 512;
    file.write_all(&[0; 512])?;
    let Some(layer) = write_layer(upper, std::io::BufWriter::new(&mut *file))? else { return Ok(None) };
    let padding = (BLOCK - layer.size % BLOCK) % BLOCK;
    file.write_all(&vec![0; usize::try_from(padding).unwrap_or(0)])?;
    let mut header = tar::Header::new_gnu();
    header.set_path("layer.tar")?;
    header.set_size(layer.size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    file.seek(SeekFrom::Start(0))?;
    file.write_all(header.as_bytes())?;
    file.seek(SeekFrom::End(0))?;

    let base_layers = parts.base.root_fs.as_ref().and_then(|r| r.layers.as_ref()).map_or(0, Vec::len);
    let Some(config) =
        image_config(parts.base, parts.container, parts.changes, &layer.diff_id, parts.created)
    else {
        return Ok(None);
    };
    let mut tar = tar::Builder::new(&mut *file);
    super::relabel::append_image(&mut tar, &config, parts.tag, base_layers, Some("layer.tar"))?;
    tar.into_inner()?.flush()?;
    file.seek(SeekFrom::Start(0))?;
    Ok(Some(config))
}

/// Issues the stopped `container` as the image `tag`, its config merged with `changes` as a
/// commit merges it, by a layer load. `None` when a commit must do it: another storage
/// driver, the containerd image store (a load needs every layer's bytes there), a change the
/// layer tar cannot carry, or a refused load.
pub async fn export(
    docker: &bollard::Docker,
    container: &str,
    changes: &bollard::models::ContainerConfig,
    tag: &str,
) -> Option<super::build_request::ImageId> {
    if super::relabel::containerd_store(docker).await {
        return None;
    }
    // The caller killed it; the walk starts only once nothing in it can run.
    let stopped = docker.wait_container(container, None::<bollard::query_parameters::WaitContainerOptions>);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures_util::StreamExt::into_future(stopped),
    )
    .await;
    let (upper, inspect) = super::upper_dir::of_container(docker, container).await?;
    if inspect.state.as_ref().and_then(|s| s.running) != Some(false) {
        return None;
    }
    let base = docker.inspect_image(inspect.image.as_deref()?).await.ok()?;
    let container_config = inspect.config?;
    let changes = changes.clone();
    let tag_owned = tag.to_owned();
    let staged = tokio::task::spawn_blocking(move || {
        let mut file = tempfile::tempfile()?;
        let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let parts = ArchiveParts {
            base: &base,
            container: &container_config,
            changes: &changes,
            tag: &tag_owned,
            created: &created,
        };
        Ok::<_, std::io::Error>(write_archive(&upper, &mut file, &parts)?.map(|config| (file, config)))
    })
    .await;
    let (file, config) = match staged {
        Ok(Ok(Some(staged))) => staged,
        Ok(Err(e)) => {
            tracing::debug!("the layer of {container} could not be read: {e}; committing");
            return None;
        }
        Ok(Ok(None)) | Err(_) => return None,
    };
    let body = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    super::relabel::load_tagged(docker, body, &config, tag).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let kind = e.header().entry_type();
                let path = e.path().unwrap().display().to_string();
                let mut text = String::new();
                if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
                    text = e.link_name().unwrap().unwrap().display().to_string();
                } else {
                    e.read_to_string(&mut text).unwrap();
                }
                (path, kind, text)
            })
            .collect()
    }

    #[test]
    fn changes_become_a_layer_with_parents_first_links_kept_and_nothing_followed() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path();
        std::fs::create_dir_all(up.join("workspace/sub")).unwrap();
        std::fs::write(up.join("workspace/sub/app.py"), "print(1)\n").unwrap();
        std::fs::write(up.join("workspace/.wh..wh..opq"), "").unwrap();
        std::fs::hard_link(up.join("workspace/sub/app.py"), up.join("workspace/twin.py")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", up.join("workspace/secret")).unwrap();
        let mut tar = Vec::new();
        let layer = write_layer(up, &mut tar).unwrap().unwrap();
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "workspace",
                "workspace/.wh..wh..opq",
                "workspace/secret",
                "workspace/sub",
                "workspace/twin.py",
                "workspace/sub/app.py"
            ]
        );
        assert_eq!(got[2], ("workspace/secret".into(), tar::EntryType::Symlink, "/etc/shadow".into()));
        // A directory's own entries come first; the second name of a file links to the first.
        assert_eq!(got[4].2, "print(1)\n");
        assert_eq!(got[5], ("workspace/sub/app.py".into(), tar::EntryType::Link, "workspace/twin.py".into()));
        assert_eq!(
            layer,
            LayerInfo { diff_id: format!("sha256:{:x}", Sha256::digest(&tar)), size: tar.len() as u64 }
        );
    }

    #[test]
    fn what_a_layer_cannot_carry_as_a_commit_would_is_left_to_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::RWXU, 0)
            .unwrap();
        assert!(write_layer(dir.path(), std::io::sink()).unwrap().is_none(), "a fifo");
        std::fs::remove_file(&fifo).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        if rustix::fs::lsetxattr(&file, "user.note", b"1", rustix::fs::XattrFlags::empty()).is_ok() {
            assert!(write_layer(dir.path(), std::io::sink()).unwrap().is_none(), "an extended attribute");
        }
    }

    #[test]
    fn the_config_is_the_commits_merge_on_the_base_layers_plus_the_new_one() {
        use bollard::models::{ContainerConfig, ImageInspect, ImageInspectRootFs};
        let base = ImageInspect {
            root_fs: Some(ImageInspectRootFs { typ: "layers".into(), layers: Some(vec!["sha256:a".into()]) }),
            ..Default::default()
        };
        let container = ContainerConfig {
            image: Some("sha256:base".into()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            env: Some(vec!["PATH=/usr/bin".into(), "HOME=/old".into()]),
            labels: Some(HashMap::from([
                ("org.kept".into(), "1".into()),
                ("slipway.release".into(), "v1".into()),
            ])),
            ..Default::default()
        };
        let changes = ContainerConfig {
            entrypoint: Some(vec!["/cnb/launcher".into()]),
            env: Some(vec!["HOME=/home/app".into()]),
            labels: Some(HashMap::from([("slipway.release".into(), "v2".into())])),
            ..Default::default()
        };
        let doc: Value = serde_json::from_slice(
            &image_config(&base, &container, &changes, "sha256:b", "2026-12-02T00:00:00Z").unwrap(),
        )
        .unwrap();
        assert_eq!(doc["rootfs"]["diff_ids"], json!(["sha256:a", "sha256:b"]));
        assert_eq!(doc["config"]["Entrypoint"], json!(["/cnb/launcher"]));
        assert_eq!(doc["config"]["Cmd"], json!(["sleep", "infinity"]));
        assert_eq!(doc["config"]["Env"], json!(["HOME=/home/app", "PATH=/usr/bin"]));
        assert_eq!(doc["config"]["Labels"]["slipway.release"], "v2");
        assert_eq!(doc["config"]["Labels"]["org.kept"], "1");
        assert!(doc["config"].get("Image").is_none());
    }

    #[test]
    fn the_archive_holds_the_streamed_layer_its_config_and_a_manifest_of_blanks_then_the_layer() {
        use bollard::models::{ContainerConfig, ImageInspect, ImageInspectRootFs};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("workspace")).unwrap();
        std::fs::write(dir.path().join("workspace/app.py"), "x".repeat(1000)).unwrap();
        let base = ImageInspect {
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(vec!["sha256:a".into(), "sha256:b".into()]),
            }),
            ..Default::default()
        };
        let parts = ArchiveParts {
            base: &base,
            container: &ContainerConfig::default(),
            changes: &ContainerConfig::default(),
            tag: "slipway/demo:v2",
            created: "2026-12-02T00:00:00Z",
        };
        let mut file = tempfile::tempfile().unwrap();
        let config = write_archive(dir.path(), &mut file, &parts).unwrap().unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        let mut files = HashMap::new();
        for e in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(e.path().unwrap().display().to_string(), data);
        }
        let layer = &files["layer.tar"];
        let names: Vec<String> = entries(layer).into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(names, ["workspace", "workspace/app.py"]);
        let doc: Value = serde_json::from_slice(&config).unwrap();
        let diff_id = format!("sha256:{:x}", Sha256::digest(layer));
        assert_eq!(doc["rootfs"]["diff_ids"], json!(["sha256:a", "sha256:b", diff_id]));
        let digest = format!("{:x}", Sha256::digest(&config));
        assert_eq!(files[&format!("{digest}.json")], config);
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["Layers"], json!(["blank_0", "blank_1", "layer.tar"]));
        assert_eq!(manifest[0]["RepoTags"], json!(["slipway/demo:v2"]));
        assert!(files["blank_0"].is_empty() && files["blank_1"].is_empty());
    }
}
