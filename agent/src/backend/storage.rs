//! The `Storage` trait: what the agent asks of the driver of one SR type. It makes a VDI
//! reachable on this host as a path the hypervisor can open (attach, then activate; undone by
//! deactivate, then detach, as xapi's SM backends do), and it manages the VDIs of an SR
//! (create, destroy, resize, snapshot, clone, scan), and it writes a VDI from an image and
//! reads one out as an image (import, export), streaming with bounded memory.
//!
//! A file SR (qcow2 or raw files in a directory) attaches a VDI as its file; a block SR as its
//! device node. Attach is where a driver does the slow work that needs no exclusive access
//! (log in, map, check the file); activate is the point from which one host writes to the VDI.
//! A read-only VDI (an ISO in a CD drive) may be attached by many VMs at once.
//!
//! VDIs are named by their `location` in their SR, as the master keeps it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use host_api::{DiskSpec, ImageFormat, SrSpec, SrUsage, VdiInfo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{BackendError, BackendOp, Op, cannot};

/// Why a driver without chains refuses to branch a disk in use.
const CANNOT_BRANCH_LIVE: &str = "this storage driver cannot snapshot a disk in use";

/// The driver of one SR type. Methods are in the order a start uses them, then the reverses,
/// then the management of an SR's VDIs.
pub trait Storage: Send + Sync + 'static {
    /// Makes `disk` reachable on this host and says where the hypervisor opens it.
    fn attach<'a>(&'a self, disk: &'a DiskSpec, read_only: bool) -> Op<'a, AttachedDisk>;
    /// Readies the attached `disk` for I/O from this host.
    fn activate<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a>;
    /// Stops I/O to `disk` from this host; it stays attached. A disk not active is left as
    /// it is, so that a teardown after a crash completes.
    fn deactivate<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a>;
    /// Releases what `attach` set up for `disk`; a disk not attached is left as it is.
    fn detach<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a>;
    /// What `attach` made of `disk` on this host, if it is attached: how a later run (a
    /// teardown undoing its unplug) finds the path to plug again.
    fn attached<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a, Option<AttachedDisk>>;
    /// Checks that this host reaches `sr` where its spec says, making that place first when
    /// `create` and the SR type can; `SrUnavailable` otherwise.
    fn plug_sr<'a>(&'a self, sr: &'a SrSpec, create: bool) -> Op<'a>;
    /// Makes an empty VDI of `virtual_size_bytes` in `sr`.
    fn create_vdi<'a>(&'a self, sr: &'a SrSpec, virtual_size_bytes: u64) -> Op<'a, VdiInfo>;
    /// Deletes the VDI at `location` in `sr`; it must not be attached.
    fn destroy_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a>;
    /// Grows the VDI at `location` to `virtual_size_bytes` (never shrinks it).
    fn resize_vdi<'a>(
        &'a self,
        sr: &'a SrSpec,
        location: &'a str,
        virtual_size_bytes: u64,
    ) -> Op<'a, VdiInfo>;
    /// Makes a read-only copy of the VDI at `location` as it is now.
    fn snapshot_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo>;
    /// Makes a writable copy of the VDI at `location` as it is now.
    fn clone_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo>;
    /// Every VDI `sr` holds, as its driver finds them.
    fn scan<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, Vec<VdiInfo>>;
    /// What `sr` takes of the place that holds it.
    fn usage<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, SrUsage>;
    /// The first step of a snapshot or clone (`op`) of the VDI at `location` that a running
    /// guest writes to: the VDI's data frozen, and a new, empty top for its chain that the
    /// hypervisor moves the guest onto (see `Hypervisor::switch_disk`). Drivers without
    /// chains cannot (the default).
    fn freeze<'a>(&'a self, sr: &'a SrSpec, location: &'a str, op: BackendOp) -> Op<'a, Frozen> {
        let _ = (sr, location);
        cannot(op, CANNOT_BRANCH_LIVE)
    }
    /// Undoes `freeze` when the guest could not be moved onto the new top.
    fn thaw<'a>(&'a self, sr: &'a SrSpec, location: &'a str, frozen: &'a Frozen) -> Op<'a> {
        let _ = (sr, location, frozen);
        Box::pin(async { Ok(()) })
    }
    /// The last step: the snapshot (`read_only`) or clone of the frozen data.
    fn branch_frozen<'a>(
        &'a self,
        sr: &'a SrSpec,
        frozen: &'a Frozen,
        read_only: bool,
        op: BackendOp,
    ) -> Op<'a, VdiInfo> {
        let _ = (sr, frozen, read_only);
        cannot(op, CANNOT_BRANCH_LIVE)
    }
    /// Writes what `image` yields, laid out as `format`, into the VDI `disk` of `sr`, which
    /// must not be attached: afterwards the VDI reads as the image, and as zeros past its
    /// end. An image larger than the VDI is `ImageTooLarge`, one that is not what `format`
    /// says `ImageUnusable`; a failed import leaves the VDI as it was.
    fn import<'a>(
        &'a self,
        sr: &'a SrSpec,
        disk: &'a DiskSpec,
        format: ImageFormat,
        image: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a, VdiInfo>;
    /// Writes the VDI `disk` of `sr`, which must not be attached, to `out` laid out as
    /// `format` (a qcow2 without a backing file).
    fn export<'a>(
        &'a self,
        sr: &'a SrSpec,
        disk: &'a DiskSpec,
        format: ImageFormat,
        out: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a>;
}

/// Checks that the directory of `sr` (its `location`) is one on this host, making it first
/// (with its parents) when `create`: how the drivers whose SRs are directories plug them.
pub(super) async fn plug_directory(sr: &SrSpec, create: bool) -> Result<(), BackendError> {
    let unavailable = |reason: String| BackendError::SrUnavailable {
        sr: sr.uuid.clone(),
        reason,
    };
    if sr.location.is_empty() {
        return Err(unavailable("no device_config:location".to_owned()));
    }
    let path = PathBuf::from(&sr.location);
    if create {
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|err| unavailable(format!("cannot make {}: {err}", path.display())))?;
    }
    match tokio::fs::metadata(&path).await {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(unavailable(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(err) => Err(unavailable(format!("{}: {err}", path.display()))),
    }
}

/// What statvfs(2) says of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemStat {
    pub size_bytes: u64,
    pub free_bytes: u64,
    /// Free for an unprivileged user (`f_bavail`).
    pub available_bytes: u64,
}

/// What statvfs(2) says of the filesystem holding `path`.
pub fn filesystem_stat(path: &Path) -> std::io::Result<FilesystemStat> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The field types are platform aliases (c_ulong, fsblkcnt_t); all fit u64.
    let fragment = stat.f_frsize as u64;
    let bytes = |blocks: u64| blocks.saturating_mul(fragment);
    Ok(FilesystemStat {
        size_bytes: bytes(stat.f_blocks as u64),
        free_bytes: bytes(stat.f_bfree as u64),
        available_bytes: bytes(stat.f_bavail as u64),
    })
}

/// The size of the filesystem holding `path`, and the bytes in use on it.
pub fn filesystem_usage(path: &Path) -> std::io::Result<SrUsage> {
    let stat = filesystem_stat(path)?;
    Ok(SrUsage {
        physical_size_bytes: stat.size_bytes,
        physical_utilisation_bytes: stat.size_bytes.saturating_sub(stat.free_bytes),
    })
}

/// What the SR whose directory is `sr`'s location takes: its filesystem's size and use, as
/// xapi's file SRs report them; `SrUnavailable` when the directory cannot be read.
pub(super) async fn directory_usage(sr: &SrSpec) -> Result<SrUsage, BackendError> {
    let path = PathBuf::from(&sr.location);
    let usage = tokio::task::spawn_blocking(move || filesystem_usage(&path)).await;
    let unavailable = |reason: String| BackendError::SrUnavailable {
        sr: sr.uuid.clone(),
        reason,
    };
    match usage {
        Ok(Ok(usage)) => Ok(usage),
        Ok(Err(err)) => Err(unavailable(format!("{}: {err}", sr.location))),
        Err(err) => Err(unavailable(err.to_string())),
    }
}

/// The path of the file at `location` in the directory of `sr`; `NoVdi` unless `location`
/// is a plain file name (no path) that `is_name` accepts: how the drivers whose VDIs are
/// files in their SR's directory name them.
pub(super) fn file_in_sr(
    sr: &SrSpec,
    location: &str,
    is_name: fn(&str) -> bool,
) -> Result<PathBuf, BackendError> {
    let plain = Path::new(location).file_name() == Some(OsStr::new(location));
    if !plain || !is_name(location) {
        return Err(no_vdi(sr, location));
    }
    Ok(Path::new(&sr.location).join(location))
}

/// As `file_in_sr`, for a file that must exist.
pub(super) fn existing_file_in_sr(
    sr: &SrSpec,
    location: &str,
    is_name: fn(&str) -> bool,
) -> Result<PathBuf, BackendError> {
    let path = file_in_sr(sr, location, is_name)?;
    if !path.is_file() {
        return Err(no_vdi(sr, location));
    }
    Ok(path)
}

/// The names of the files in `dir` that `is_name` accepts, sorted.
pub(super) fn file_names_in(dir: &Path, is_name: fn(&str) -> bool) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_file = entry.file_type()?.is_file();
        match entry.file_name().into_string() {
            Ok(name) if is_file && is_name(&name) => names.push(name),
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}

fn no_vdi(sr: &SrSpec, location: &str) -> BackendError {
    BackendError::NoVdi {
        sr: sr.uuid.clone(),
        location: location.to_owned(),
    }
}

/// A VDI whose data `Storage::freeze` froze as a hidden base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// The base's name in the SR.
    pub base: String,
    /// The VDI's new, empty top, at the VDI's own path.
    pub overlay: PathBuf,
    pub virtual_size_bytes: u64,
}

/// A VDI made reachable on this host: what the hypervisor opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedDisk {
    /// The file or device node.
    pub path: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
}

/// How the bytes at an attached disk's path are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}
