//! The `file` storage driver: an SR is a directory (`SrSpec.location`), each of its VDIs one
//! qcow2 file in it, named by a fresh uuid (`<uuid>.qcow2`); a VDI's `location` is that file
//! name. Every change goes through `qemu-img`, run as a direct child (no shell), under a
//! timeout and a CPU and memory limit, its stderr kept in the error.
//!
//! Snapshot and clone are qcow2 backing chains, instant and without a copy: the VDI's file is
//! renamed to a hidden base (`.base-<uuid>.qcow2`), which nothing writes to again; the VDI gets
//! a new, empty overlay at its old name whose backing file is that base, and the snapshot (or
//! clone) is a second overlay on the same base. Both then read the data of the moment and write
//! only to their own overlay. A base must stay as long as any overlay names it: bases are
//! hidden (a scan skips names starting with `.`), so no call destroys one, and destroying a VDI
//! never touches the base it reads through (coalescing the leftover bases is not done yet).
//! Backing files are named relative to the SR directory, so the directory can move.
//!
//! Attaching a local file sets nothing up on the host: attach checks the file in the disk's SR
//! directory and says its path; activate and deactivate have nothing to do. What is attached
//! is the agent's record of which VDIs its domains hold: it is kept in a state file under the
//! data dir (`STATE_FILE`, written durably before attach or detach answers), so that after a
//! restart (`kill -9` included) `attached` still finds a running domain's disks and a VDI in
//! use is still not destroyed.
//!
//! Import and export of a VDI as an image are in `file_sr/image.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

mod image;

use host_api::{DiskSpec, ImageFormat, SrSpec, SrUsage, VdiInfo};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use super::storage::{
    directory_usage, existing_file_in_sr, file_in_sr, file_names_in, plug_directory,
};
use super::{AttachedDisk, BackendError, BackendOp, DiskFormat, Frozen, Op, Storage, state_file};

/// The extension of a VDI's file.
const EXTENSION: &str = "qcow2";
/// How a hidden base's name starts.
const BASE_PREFIX: &str = ".base-";
/// The address space `qemu-img` may take, in bytes: a corrupt image cannot make it eat the
/// host's memory. Address space, not memory: glibc reserves 64 MiB per malloc arena (up to
/// eight per core) and each thread's stack, so 1 GiB made `qemu-img` fail to start its
/// threads now and then (`qemu_thread_create: Resource temporarily unavailable`).
const QEMU_IMG_MEMORY_BYTES: u64 = 4 << 30;

/// The file, under the data dir, that holds the VDIs attached on this host.
pub const STATE_FILE: &str = "file-sr/attached.json";

/// The settings of the `file` driver.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSrConfig {
    /// How long one `qemu-img` run may take before it is killed (also its CPU-time limit).
    pub qemu_img_timeout: Duration,
}

impl Default for FileSrConfig {
    fn default() -> FileSrConfig {
        FileSrConfig {
            qemu_img_timeout: Duration::from_secs(60),
        }
    }
}

/// The `file` storage driver.
pub struct FileSr {
    config: FileSrConfig,
    /// The attached VDIs, by VDI uuid; each change is in the state file before the lock is
    /// released.
    attached: Mutex<BTreeMap<String, AttachedDisk>>,
    /// The state file (`STATE_FILE` under the data dir).
    state_path: PathBuf,
}

/// What `qemu-img info --output=json` says of an image (the fields used).
#[derive(Debug, Deserialize)]
struct ImageInfo {
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    actual_size: u64,
    #[serde(rename = "backing-filename", default)]
    backing_filename: Option<String>,
    /// What is particular to the format; for a qcow2, its `data-file` if it has one.
    #[serde(rename = "format-specific", default)]
    format_specific: serde_json::Value,
}

impl ImageInfo {
    /// Whether the image keeps its data in an external file (a qcow2 `data-file`).
    fn has_data_file(&self) -> bool {
        !self.format_specific["data"]["data-file"].is_null()
    }
}

impl FileSr {
    /// The driver, with the VDIs attached as its state file under `data_dir` says.
    pub fn open(data_dir: &Path, config: FileSrConfig) -> Result<FileSr, BackendError> {
        let state_path = data_dir.join(STATE_FILE);
        let attached: BTreeMap<String, AttachedDisk> = state_file::read(&state_path)?;
        tracing::info!(path = %state_path.display(), attached = attached.len(), "file storage driver opened");
        Ok(FileSr {
            config,
            attached: Mutex::new(attached),
            state_path,
        })
    }

    /// Applies `change` to the attached VDIs and writes them to the state file; on a failed
    /// write the change is undone.
    async fn change_attached<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, AttachedDisk>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut attached = self.attached.lock().await;
        let mut changed = attached.clone();
        let value = change(&mut changed)?;
        if changed != *attached {
            let path = self.state_path.clone();
            let state = changed.clone();
            tokio::task::spawn_blocking(move || state_file::write(&path, &state))
                .await
                .map_err(|err| BackendError::State {
                    path: self.state_path.clone(),
                    source: std::io::Error::other(err),
                })??;
            *attached = changed;
        }
        Ok(value)
    }

    /// Runs `qemu-img` with `args`; its stdout, or `QemuImg` with its stderr.
    async fn qemu_img(&self, op: BackendOp, args: &[&OsStr]) -> Result<Vec<u8>, BackendError> {
        let timeout = self.config.qemu_img_timeout;
        let cpu_secs = timeout.as_secs().max(1);
        let mut command = tokio::process::Command::new("qemu-img");
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // `setrlimit`, which is async-signal-safe, on values computed before the fork.
        unsafe {
            command.pre_exec(move || limit(cpu_secs));
        }
        let failure = |status: String, stderr: &[u8]| BackendError::QemuImg {
            op,
            status,
            stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
        };
        let output = match tokio::time::timeout(timeout, command.output()).await {
            Err(_) => return Err(failure(format!("timed out after {timeout:?}"), b"")),
            Ok(Err(err)) => return Err(failure(format!("cannot run qemu-img: {err}"), b"")),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            return Err(failure(output.status.to_string(), &output.stderr));
        }
        Ok(output.stdout)
    }

    /// The sizes of the qcow2 image at `path`, probed with the format forced and without
    /// taking its lock (it may be in use).
    async fn info(&self, op: BackendOp, path: &Path) -> Result<ImageInfo, BackendError> {
        let args = [
            OsStr::new("info"),
            OsStr::new("--output=json"),
            OsStr::new("-U"),
            OsStr::new("-f"),
            OsStr::new(EXTENSION),
            path.as_os_str(),
        ];
        let stdout = self.qemu_img(op, &args).await?;
        serde_json::from_slice(&stdout).map_err(|err| BackendError::QemuImg {
            op,
            status: "unreadable answer".to_owned(),
            stderr: err.to_string(),
        })
    }

    /// The VDI at `location` in `sr`, as a scan reports it.
    async fn vdi_info(
        &self,
        op: BackendOp,
        sr: &SrSpec,
        location: &str,
        read_only: bool,
    ) -> Result<VdiInfo, BackendError> {
        let info = self.info(op, &vdi_path(sr, location)?).await?;
        Ok(VdiInfo {
            location: location.to_owned(),
            virtual_size_bytes: info.virtual_size,
            physical_utilisation_bytes: info.actual_size,
            read_only,
        })
    }

    /// Makes a new overlay `name` in `sr` of `virtual_size_bytes` whose backing file is
    /// `backing` (a name in `sr`), without opening the backing file (a running guest may hold
    /// its lock).
    async fn overlay(
        &self,
        op: BackendOp,
        sr: &SrSpec,
        backing: &str,
        name: &str,
        virtual_size_bytes: u64,
    ) -> Result<(), BackendError> {
        let path = Path::new(&sr.location).join(name);
        let size = virtual_size_bytes.to_string();
        let args = [
            OsStr::new("create"),
            OsStr::new("-q"),
            OsStr::new("-u"),
            OsStr::new("-f"),
            OsStr::new(EXTENSION),
            OsStr::new("-b"),
            OsStr::new(backing),
            OsStr::new("-F"),
            OsStr::new(EXTENSION),
            path.as_os_str(),
            OsStr::new(&size),
        ];
        self.qemu_img(op, &args).await.map(drop)
    }

    /// Freezes the VDI at `location` as a hidden base (renamed: a guest writing to it keeps
    /// its open file) with a new, empty overlay on it at the VDI's name.
    async fn freeze_vdi(
        &self,
        op: BackendOp,
        sr: &SrSpec,
        location: &str,
    ) -> Result<Frozen, BackendError> {
        let path = existing(sr, location)?;
        let size = self.info(op, &path).await?.virtual_size;
        let base = format!("{BASE_PREFIX}{}", fresh_name());
        let base_path = Path::new(&sr.location).join(&base);
        rename(&path, &base_path)?;
        if let Err(err) = self.overlay(op, sr, &base, location, size).await {
            // Put the VDI back as it was; the error says what failed.
            let _ = std::fs::rename(&base_path, &path);
            return Err(err);
        }
        Ok(Frozen {
            base,
            overlay: path,
            virtual_size_bytes: size,
        })
    }

    /// Makes a second overlay on the base of `frozen`: the snapshot or clone.
    async fn branch_frozen_vdi(
        &self,
        op: BackendOp,
        sr: &SrSpec,
        frozen: &Frozen,
        read_only: bool,
    ) -> Result<VdiInfo, BackendError> {
        let branch = fresh_name();
        let size = frozen.virtual_size_bytes;
        self.overlay(op, sr, &frozen.base, &branch, size).await?;
        self.vdi_info(op, sr, &branch, read_only).await
    }

    /// Freezes the VDI at `location`, which nothing may write to, and branches it: the
    /// snapshot or clone.
    async fn branch(
        &self,
        op: BackendOp,
        sr: &SrSpec,
        location: &str,
        read_only: bool,
    ) -> Result<VdiInfo, BackendError> {
        if self.is_written(sr, location).await {
            return Err(in_use(sr, location, op));
        }
        let frozen = self.freeze_vdi(op, sr, location).await?;
        self.branch_frozen_vdi(op, sr, &frozen, read_only).await
    }

    /// Runs `qemu-img <verb> -q -f qcow2 <path> <bytes>`: a create or a resize to `bytes`.
    async fn qemu_img_sized(
        &self,
        op: BackendOp,
        verb: &str,
        path: &Path,
        bytes: u64,
    ) -> Result<(), BackendError> {
        let size = bytes.to_string();
        let args = [
            OsStr::new(verb),
            OsStr::new("-q"),
            OsStr::new("-f"),
            OsStr::new(EXTENSION),
            path.as_os_str(),
            OsStr::new(&size),
        ];
        self.qemu_img(op, &args).await.map(drop)
    }

    /// Whether a VDI of `sr` at `location` is attached here.
    async fn is_attached(&self, sr: &SrSpec, location: &str) -> bool {
        let path = Path::new(&sr.location).join(location);
        let attached = self.attached.lock().await;
        attached.values().any(|disk| disk.path == path)
    }

    /// Whether a VDI of `sr` at `location` is attached here read-write: one attached
    /// read-only only is read, and may be branched or exported as it is.
    async fn is_written(&self, sr: &SrSpec, location: &str) -> bool {
        let path = Path::new(&sr.location).join(location);
        let attached = self.attached.lock().await;
        attached
            .values()
            .any(|disk| disk.path == path && !disk.read_only)
    }
}

/// Limits the CPU time and address space of the process it runs in.
fn limit(cpu_secs: u64) -> std::io::Result<()> {
    let limits = [
        (libc::RLIMIT_CPU, cpu_secs),
        (libc::RLIMIT_AS, QEMU_IMG_MEMORY_BYTES),
    ];
    for (resource, value) in limits {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: `limit` is a valid rlimit that lives across the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A fresh VDI file name.
fn fresh_name() -> String {
    format!("{}.{EXTENSION}", uuid::Uuid::new_v4())
}

/// The path of the VDI at `location` in `sr`; a location that is not a plain name of a VDI's
/// file (a path, a base, another extension) names no VDI.
fn vdi_path(sr: &SrSpec, location: &str) -> Result<PathBuf, BackendError> {
    file_in_sr(sr, location, is_vdi_name)
}

/// The path of the VDI at `location` in `sr`, which must exist.
fn existing(sr: &SrSpec, location: &str) -> Result<PathBuf, BackendError> {
    existing_file_in_sr(sr, location, is_vdi_name)
}

/// Whether a file name in an SR directory is a VDI's (not hidden, ends `.qcow2`).
fn is_vdi_name(name: &str) -> bool {
    !name.starts_with('.') && Path::new(name).extension() == Some(OsStr::new(EXTENSION))
}

/// `VdiInUse` for the VDI at `location` in `sr`, which `op` cannot touch.
fn in_use(sr: &SrSpec, location: &str, op: BackendOp) -> BackendError {
    BackendError::VdiInUse {
        sr: sr.uuid.clone(),
        location: location.to_owned(),
        op,
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), BackendError> {
    std::fs::rename(from, to).map_err(|source| BackendError::State {
        path: from.to_owned(),
        source,
    })
}

impl Storage for FileSr {
    fn attach<'a>(&'a self, disk: &'a DiskSpec, read_only: bool) -> Op<'a, AttachedDisk> {
        Box::pin(async move {
            let path = existing(&disk.sr, &disk.location)?;
            self.change_attached(|attached| {
                if let Some(existing) = attached.get(&disk.vdi_uuid) {
                    if existing.read_only != read_only {
                        return Err(BackendError::DeviceAttached {
                            device: disk.vdi_uuid.clone(),
                        });
                    }
                    return Ok(existing.clone());
                }
                let disk_now = AttachedDisk {
                    path,
                    format: DiskFormat::Qcow2,
                    read_only,
                };
                attached.insert(disk.vdi_uuid.clone(), disk_now.clone());
                Ok(disk_now)
            })
            .await
        })
    }

    /// A local file needs nothing to be written to from this host.
    fn activate<'a>(&'a self, _disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    /// A local file needs nothing to stop being written to from this host.
    fn deactivate<'a>(&'a self, _disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    fn detach<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.change_attached(|attached| {
            attached.remove(&disk.vdi_uuid);
            Ok(())
        }))
    }

    fn attached<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a, Option<AttachedDisk>> {
        Box::pin(async move {
            let attached = self.attached.lock().await;
            Ok(attached.get(&disk.vdi_uuid).cloned())
        })
    }

    fn plug_sr<'a>(&'a self, sr: &'a SrSpec, create: bool) -> Op<'a> {
        Box::pin(plug_directory(sr, create))
    }

    fn create_vdi<'a>(&'a self, sr: &'a SrSpec, virtual_size_bytes: u64) -> Op<'a, VdiInfo> {
        Box::pin(async move {
            let op = BackendOp::CreateVdi;
            let location = fresh_name();
            let path = vdi_path(sr, &location)?;
            self.qemu_img_sized(op, "create", &path, virtual_size_bytes)
                .await?;
            self.vdi_info(op, sr, &location, false).await
        })
    }

    fn destroy_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a> {
        Box::pin(async move {
            let path = existing(sr, location)?;
            if self.is_attached(sr, location).await {
                return Err(in_use(sr, location, BackendOp::DestroyVdi));
            }
            std::fs::remove_file(&path).map_err(|source| BackendError::State { path, source })
        })
    }

    fn resize_vdi<'a>(
        &'a self,
        sr: &'a SrSpec,
        location: &'a str,
        virtual_size_bytes: u64,
    ) -> Op<'a, VdiInfo> {
        Box::pin(async move {
            let op = BackendOp::ResizeVdi;
            let path = existing(sr, location)?;
            let now = self.info(op, &path).await?.virtual_size;
            if virtual_size_bytes < now {
                return Err(BackendError::CannotShrink {
                    sr: sr.uuid.clone(),
                    location: location.to_owned(),
                    virtual_size_bytes: now,
                    requested_bytes: virtual_size_bytes,
                });
            }
            if virtual_size_bytes > now {
                if self.is_attached(sr, location).await {
                    return Err(in_use(sr, location, op));
                }
                self.qemu_img_sized(op, "resize", &path, virtual_size_bytes)
                    .await?;
            }
            self.vdi_info(op, sr, location, false).await
        })
    }

    fn snapshot_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo> {
        Box::pin(self.branch(BackendOp::SnapshotVdi, sr, location, true))
    }

    fn clone_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo> {
        Box::pin(self.branch(BackendOp::CloneVdi, sr, location, false))
    }

    fn freeze<'a>(&'a self, sr: &'a SrSpec, location: &'a str, op: BackendOp) -> Op<'a, Frozen> {
        Box::pin(self.freeze_vdi(op, sr, location))
    }

    /// Removes the overlay and gives the base its name back: the VDI is as it was (a guest
    /// still writing to it writes to the same file).
    fn thaw<'a>(&'a self, sr: &'a SrSpec, location: &'a str, frozen: &'a Frozen) -> Op<'a> {
        Box::pin(async move {
            let base = Path::new(&sr.location).join(&frozen.base);
            rename(&base, &frozen.overlay)?;
            tracing::info!(sr = %sr.uuid, location, "VDI thawed");
            Ok(())
        })
    }

    fn branch_frozen<'a>(
        &'a self,
        sr: &'a SrSpec,
        frozen: &'a Frozen,
        read_only: bool,
        op: BackendOp,
    ) -> Op<'a, VdiInfo> {
        Box::pin(self.branch_frozen_vdi(op, sr, frozen, read_only))
    }

    /// Every `*.qcow2` file of the SR's directory; one `qemu-img` cannot read as qcow2 is
    /// skipped and logged, so one corrupt file does not hide the others.
    fn scan<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, Vec<VdiInfo>> {
        Box::pin(async move {
            let dir = Path::new(&sr.location);
            let unreadable = |source| BackendError::State {
                path: dir.to_owned(),
                source,
            };
            let names = file_names_in(dir, is_vdi_name).map_err(unreadable)?;
            let mut found = Vec::with_capacity(names.len());
            for name in names {
                match self.vdi_info(BackendOp::Scan, sr, &name, false).await {
                    Ok(vdi) => found.push(vdi),
                    Err(err) => {
                        tracing::warn!(sr = %sr.uuid, file = %name, error = %err, "not a qcow2 image: skipped");
                    }
                }
            }
            Ok(found)
        })
    }

    fn usage<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, SrUsage> {
        Box::pin(directory_usage(sr))
    }

    fn import<'a>(
        &'a self,
        sr: &'a SrSpec,
        disk: &'a DiskSpec,
        format: ImageFormat,
        image: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a, VdiInfo> {
        Box::pin(self.import_image(sr, disk, format, image))
    }

    fn export<'a>(
        &'a self,
        sr: &'a SrSpec,
        disk: &'a DiskSpec,
        format: ImageFormat,
        out: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(self.export_image(sr, disk, format, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::disk;

    /// The driver with its state under `data_dir`.
    fn driver(data_dir: &Path) -> FileSr {
        let config = FileSrConfig {
            qemu_img_timeout: Duration::from_secs(30),
        };
        FileSr::open(data_dir, config).expect("the driver opens")
    }

    /// A driver and an SR in a new, empty temp dir (kept while the dir lives), its state in
    /// the same dir.
    pub(super) fn empty_sr() -> (tempfile::TempDir, FileSr, SrSpec) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = driver(dir.path());
        let sr = SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "file".to_owned(),
            location: dir.path().to_string_lossy().into_owned(),
        };
        (dir, storage, sr)
    }

    /// The backing file `qemu-img` reads under the VDI at `location`, if any.
    fn backing(sr: &SrSpec, location: &str) -> Option<String> {
        let output = std::process::Command::new("qemu-img")
            .args(["info", "--output=json", "-U", "-f", "qcow2"])
            .arg(Path::new(&sr.location).join(location))
            .output()
            .expect("qemu-img runs");
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        info["backing-filename"].as_str().map(str::to_owned)
    }

    /// A plug of a missing directory is `SrUnavailable`, unless asked to make it, which it
    /// does with its parents; an SR without a location is refused either way.
    #[tokio::test]
    async fn a_plug_makes_the_directory_only_when_asked() {
        let (dir, storage, mut sr) = empty_sr();
        let nested = dir.path().join("a/b");
        sr.location = nested.to_string_lossy().into_owned();
        assert!(matches!(
            storage.plug_sr(&sr, false).await,
            Err(BackendError::SrUnavailable { .. })
        ));
        storage
            .plug_sr(&sr, true)
            .await
            .expect("a plug that makes it");
        assert!(nested.is_dir());
        storage.plug_sr(&sr, false).await.expect("a plug");
        sr.location = String::new();
        assert!(matches!(
            storage.plug_sr(&sr, true).await,
            Err(BackendError::SrUnavailable { .. })
        ));
    }

    /// A created VDI is a thin qcow2 file that a scan finds with its virtual size; destroyed,
    /// it is gone from the directory and from a scan.
    #[tokio::test]
    async fn a_created_vdi_is_scanned_with_its_size_until_destroyed() {
        let (_dir, storage, sr) = empty_sr();
        let vdi = storage.create_vdi(&sr, 1 << 30).await.expect("create");
        assert!(vdi.location.ends_with(".qcow2"));
        assert_eq!(vdi.virtual_size_bytes, 1 << 30);
        assert!(vdi.physical_utilisation_bytes < 1 << 20, "thin: {vdi:?}");
        assert_eq!(
            storage.scan(&sr).await.expect("scan"),
            std::slice::from_ref(&vdi)
        );
        storage
            .destroy_vdi(&sr, &vdi.location)
            .await
            .expect("destroy");
        assert!(storage.scan(&sr).await.expect("scan").is_empty());
        assert!(matches!(
            storage.destroy_vdi(&sr, &vdi.location).await,
            Err(BackendError::NoVdi { .. })
        ));
    }

    /// A resize grows a VDI; a smaller size is refused as `CannotShrink` and leaves it as it
    /// was.
    #[tokio::test]
    async fn a_vdi_grows_and_never_shrinks() {
        let (_dir, storage, sr) = empty_sr();
        let vdi = storage.create_vdi(&sr, 1 << 30).await.expect("create");
        let grown = storage
            .resize_vdi(&sr, &vdi.location, 2 << 30)
            .await
            .expect("grow");
        assert_eq!(grown.virtual_size_bytes, 2 << 30);
        assert!(matches!(
            storage.resize_vdi(&sr, &vdi.location, 1 << 30).await,
            Err(BackendError::CannotShrink { .. })
        ));
        let found = storage.scan(&sr).await.expect("scan");
        assert_eq!(found[0].virtual_size_bytes, 2 << 30);
    }

    /// A snapshot and a clone are overlays on a hidden base that the VDI reads through too;
    /// the scan shows the three VDIs with the original's size and not the bases.
    #[tokio::test]
    async fn snapshot_and_clone_are_overlays_on_a_hidden_base() {
        let (_dir, storage, sr) = empty_sr();
        let vdi = storage.create_vdi(&sr, 1 << 30).await.expect("create");
        let snapshot = storage
            .snapshot_vdi(&sr, &vdi.location)
            .await
            .expect("snapshot");
        let base = backing(&sr, &snapshot.location).expect("the snapshot has a base");
        assert!(base.starts_with(BASE_PREFIX), "{base}");
        assert_eq!(backing(&sr, &vdi.location).as_deref(), Some(base.as_str()));
        let clone = storage.clone_vdi(&sr, &vdi.location).await.expect("clone");
        assert!(snapshot.read_only && !clone.read_only);
        let clone_base = backing(&sr, &clone.location).expect("the clone has a base");
        assert_eq!(
            backing(&sr, &vdi.location).as_deref(),
            Some(clone_base.as_str())
        );
        assert_eq!(backing(&sr, &clone_base).as_deref(), Some(base.as_str()));
        let found = storage.scan(&sr).await.expect("scan");
        let mut locations: Vec<_> = found.iter().map(|v| v.location.clone()).collect();
        locations.sort();
        let mut expected = [vdi.location, snapshot.location, clone.location];
        expected.sort();
        assert_eq!(locations, expected);
        assert!(found.iter().all(|v| v.virtual_size_bytes == 1 << 30));
    }

    /// A file that is not a qcow2 image is skipped by a scan, which still finds the others;
    /// other files and names are not VDIs.
    #[tokio::test]
    async fn a_corrupt_image_is_skipped_by_a_scan() {
        let (dir, storage, sr) = empty_sr();
        std::fs::write(dir.path().join("corrupt.qcow2"), b"not an image").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
        let vdi = storage.create_vdi(&sr, 1 << 20).await.expect("create");
        assert_eq!(storage.scan(&sr).await.expect("scan"), [vdi]);
        assert!(matches!(
            storage.resize_vdi(&sr, "corrupt.qcow2", 1 << 30).await,
            Err(BackendError::QemuImg { stderr, .. }) if !stderr.is_empty()
        ));
        assert!(matches!(
            storage.destroy_vdi(&sr, "../notes.txt").await,
            Err(BackendError::NoVdi { .. })
        ));
    }

    /// Attach says the path of the file in the SR's directory as qcow2 and refuses a missing
    /// file; an attached VDI cannot be destroyed until it is detached.
    #[tokio::test]
    async fn attach_names_the_file_and_refuses_a_missing_one() {
        let (dir, storage, sr) = empty_sr();
        let vdi = storage.create_vdi(&sr, 1 << 20).await.expect("create");
        let mut spec = disk("missing.qcow2");
        spec.sr = sr.clone();
        assert!(matches!(
            storage.attach(&spec, false).await,
            Err(BackendError::NoVdi { .. })
        ));
        spec.location = vdi.location.clone();
        let attached = storage.attach(&spec, false).await.expect("attach");
        assert_eq!(attached.path, dir.path().join(&vdi.location));
        assert_eq!(attached.format, DiskFormat::Qcow2);
        assert_eq!(
            storage.attached(&spec).await.expect("attached"),
            Some(attached)
        );
        storage.activate(&spec).await.expect("activate");
        assert!(matches!(
            storage.destroy_vdi(&sr, &vdi.location).await,
            Err(BackendError::VdiInUse { .. })
        ));
        storage.deactivate(&spec).await.expect("deactivate");
        storage.detach(&spec).await.expect("detach");
        assert_eq!(storage.attached(&spec).await.expect("attached"), None);
        storage
            .destroy_vdi(&sr, &vdi.location)
            .await
            .expect("destroy");
    }

    /// A disk attached read-only is only read: it is snapshotted as if it were not attached;
    /// one attached read-write is not (its guest's host takes it live, elsewhere).
    #[tokio::test]
    async fn a_disk_read_only_in_use_is_snapshotted_a_written_one_is_not() {
        let (_dir, storage, sr) = empty_sr();
        for read_only in [true, false] {
            let vdi = storage.create_vdi(&sr, 1 << 20).await.expect("create");
            let mut spec = disk(&vdi.location);
            spec.vdi_uuid = vdi.location.clone();
            spec.sr = sr.clone();
            storage.attach(&spec, read_only).await.expect("attach");
            let snapshot = storage.snapshot_vdi(&sr, &vdi.location).await;
            if read_only {
                let snapshot = snapshot.expect("a snapshot of a disk only read");
                assert_eq!(
                    backing(&sr, &snapshot.location),
                    backing(&sr, &vdi.location)
                );
            } else {
                assert!(
                    matches!(snapshot, Err(BackendError::VdiInUse { .. })),
                    "{snapshot:?}"
                );
            }
        }
    }

    /// What is attached outlives the driver: a driver opened again on the same data dir (as
    /// after a restart) finds the disk attached and refuses to destroy it, until a detach,
    /// which a third driver sees too.
    #[tokio::test]
    async fn attachments_outlive_a_restart() {
        let (dir, storage, sr) = empty_sr();
        let vdi = storage.create_vdi(&sr, 1 << 20).await.expect("create");
        let mut spec = disk(&vdi.location);
        spec.sr = sr.clone();
        let attached = storage.attach(&spec, false).await.expect("attach");
        drop(storage);
        let restarted = driver(dir.path());
        assert_eq!(
            restarted.attached(&spec).await.expect("attached"),
            Some(attached)
        );
        assert!(matches!(
            restarted.destroy_vdi(&sr, &vdi.location).await,
            Err(BackendError::VdiInUse { .. })
        ));
        restarted.detach(&spec).await.expect("detach");
        drop(restarted);
        let again = driver(dir.path());
        assert_eq!(again.attached(&spec).await.expect("attached"), None);
        again
            .destroy_vdi(&sr, &vdi.location)
            .await
            .expect("destroy");
    }
}
