//! The `iso` storage driver: an ISO library. An SR is a directory (`SrSpec.location`) and each
//! `*.iso` file in it is one read-only VDI, its `location` the file's name and its size the
//! file's length. The driver only reads: attach gives the file's path as a raw, read-only disk
//! (a read-write attach is refused), and every operation that would write to the SR or read a
//! VDI out as an image (create, destroy, resize, snapshot, clone, import, export) is
//! `NotSupported`, which the master sends as xapi's `SR_OPERATION_NOT_SUPPORTED`. Files are put
//! in or taken out of the directory by hand; a scan brings the SR's VDIs up to date. Nothing is
//! set up on the host, so the driver keeps no state.

use std::path::{Path, PathBuf};

use host_api::{DiskSpec, ImageFormat, SrSpec, SrUsage, VdiInfo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::storage::{directory_usage, existing_file_in_sr, file_names_in, plug_directory};
use super::{AttachedDisk, BackendError, BackendOp, DiskFormat, Op, Storage};

/// The extension of a VDI's file (in any case).
const EXTENSION: &str = "iso";

/// The `iso` storage driver.
pub struct IsoSr;

impl Storage for IsoSr {
    fn attach<'a>(&'a self, disk: &'a DiskSpec, read_only: bool) -> Op<'a, AttachedDisk> {
        Box::pin(async move {
            if !read_only {
                return Err(not_supported(&disk.sr, BackendOp::Attach));
            }
            iso_disk(disk)
        })
    }

    fn activate<'a>(&'a self, _disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    fn deactivate<'a>(&'a self, _disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    fn detach<'a>(&'a self, _disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    /// An ISO is attached wherever its file is: attaching sets nothing up.
    fn attached<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a, Option<AttachedDisk>> {
        Box::pin(async move { Ok(iso_disk(disk).ok()) })
    }

    /// An ISO library is a directory that must exist: it is never made.
    fn plug_sr<'a>(&'a self, sr: &'a SrSpec, _create: bool) -> Op<'a> {
        Box::pin(plug_directory(sr, false))
    }

    fn create_vdi<'a>(&'a self, sr: &'a SrSpec, _virtual_size_bytes: u64) -> Op<'a, VdiInfo> {
        refuse(sr, BackendOp::CreateVdi)
    }

    fn destroy_vdi<'a>(&'a self, sr: &'a SrSpec, _location: &'a str) -> Op<'a> {
        refuse(sr, BackendOp::DestroyVdi)
    }

    fn resize_vdi<'a>(
        &'a self,
        sr: &'a SrSpec,
        _location: &'a str,
        _virtual_size_bytes: u64,
    ) -> Op<'a, VdiInfo> {
        refuse(sr, BackendOp::ResizeVdi)
    }

    fn snapshot_vdi<'a>(&'a self, sr: &'a SrSpec, _location: &'a str) -> Op<'a, VdiInfo> {
        refuse(sr, BackendOp::SnapshotVdi)
    }

    fn clone_vdi<'a>(&'a self, sr: &'a SrSpec, _location: &'a str) -> Op<'a, VdiInfo> {
        refuse(sr, BackendOp::CloneVdi)
    }

    fn scan<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, Vec<VdiInfo>> {
        Box::pin(async move {
            let dir = PathBuf::from(&sr.location);
            tokio::task::spawn_blocking(move || list(&dir))
                .await
                .map_err(|err| failed(BackendOp::Scan, err))?
        })
    }

    fn usage<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, SrUsage> {
        Box::pin(directory_usage(sr))
    }

    fn import<'a>(
        &'a self,
        sr: &'a SrSpec,
        _disk: &'a DiskSpec,
        _format: ImageFormat,
        _image: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a, VdiInfo> {
        refuse(sr, BackendOp::Import)
    }

    fn export<'a>(
        &'a self,
        sr: &'a SrSpec,
        _disk: &'a DiskSpec,
        _format: ImageFormat,
        _out: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        refuse(sr, BackendOp::Export)
    }
}

/// The ISOs in the directory `dir`, by name, as VDIs.
fn list(dir: &Path) -> Result<Vec<VdiInfo>, BackendError> {
    let names = file_names_in(dir, is_iso_name).map_err(|err| failed(BackendOp::Scan, err))?;
    let mut vdis = Vec::with_capacity(names.len());
    for name in names {
        // A file gone since the listing is not listed.
        let Ok(metadata) = std::fs::metadata(dir.join(&name)) else {
            continue;
        };
        vdis.push(VdiInfo {
            location: name,
            virtual_size_bytes: metadata.len(),
            physical_utilisation_bytes: metadata.len(),
            read_only: true,
        });
    }
    Ok(vdis)
}

/// The ISO of `disk` as the hypervisor opens it; `NoVdi` unless `disk.location` is the plain
/// name of an ISO file in its SR's directory.
fn iso_disk(disk: &DiskSpec) -> Result<AttachedDisk, BackendError> {
    Ok(AttachedDisk {
        path: existing_file_in_sr(&disk.sr, &disk.location, is_iso_name)?,
        format: DiskFormat::Raw,
        read_only: true,
    })
}

/// Whether a file name in an ISO library is an ISO's (not hidden, ends `.iso`).
fn is_iso_name(name: &str) -> bool {
    !name.starts_with('.')
        && Path::new(name)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case(EXTENSION))
}

/// `op` on `sr`, refused.
fn refuse<'a, T: Send + 'a>(sr: &SrSpec, op: BackendOp) -> Op<'a, T> {
    let err = not_supported(sr, op);
    Box::pin(async move { Err(err) })
}

/// `op` is not one an ISO library does.
fn not_supported(sr: &SrSpec, op: BackendOp) -> BackendError {
    BackendError::NotSupported {
        sr: sr.uuid.clone(),
        op,
    }
}

/// `op` failed for `reason`.
fn failed(op: BackendOp, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Failed {
        op,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ISO library in a temp dir holding `names`, each file `len` bytes long.
    fn library(names: &[&str], len: u64) -> (tempfile::TempDir, SrSpec) {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in names {
            let file = std::fs::File::create(dir.path().join(name)).expect("a file");
            file.set_len(len).expect("its length");
        }
        let sr = SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "iso".to_owned(),
            location: dir.path().to_string_lossy().into_owned(),
        };
        (dir, sr)
    }

    fn disk(sr: &SrSpec, location: &str) -> DiskSpec {
        DiskSpec {
            vdi_uuid: "vdi".to_owned(),
            sr: sr.clone(),
            location: location.to_owned(),
            virtual_size_bytes: 0,
        }
    }

    /// A scan lists the `.iso` files only, by name, read-only, sized by their length.
    #[tokio::test]
    async fn a_scan_lists_the_iso_files_read_only() {
        let (dir, sr) = library(&["b.iso", "a.ISO", ".hidden.iso", "notes.txt"], 4096);
        std::fs::create_dir(dir.path().join("dir.iso")).expect("a directory");
        let found = IsoSr.scan(&sr).await.expect("a scan");
        let names: Vec<&str> = found.iter().map(|vdi| vdi.location.as_str()).collect();
        assert_eq!(names, ["a.ISO", "b.iso"]);
        assert!(found.iter().all(|vdi| vdi.read_only));
        assert!(found.iter().all(|vdi| vdi.virtual_size_bytes == 4096));
    }

    /// A scan of a missing directory fails rather than finding nothing.
    #[tokio::test]
    async fn a_scan_of_a_missing_directory_fails() {
        let (dir, mut sr) = library(&[], 0);
        sr.location = dir.path().join("missing").to_string_lossy().into_owned();
        assert!(IsoSr.scan(&sr).await.is_err());
    }

    /// A plug finds the library's directory and never makes it: a missing one, or a file,
    /// is `SrUnavailable`.
    #[tokio::test]
    async fn a_plug_needs_the_directory_to_exist() {
        let (dir, mut sr) = library(&["x.iso"], 1024);
        IsoSr.plug_sr(&sr, true).await.expect("a plug");
        for location in [dir.path().join("missing"), dir.path().join("x.iso")] {
            sr.location = location.to_string_lossy().into_owned();
            assert!(matches!(
                IsoSr.plug_sr(&sr, true).await,
                Err(BackendError::SrUnavailable { .. })
            ));
        }
        assert!(!dir.path().join("missing").exists());
    }

    /// A read-only attach gives the file as a raw disk; a read-write one is refused, and a
    /// location that is not an ISO of the SR is `NoVdi`.
    #[tokio::test]
    async fn an_iso_attaches_read_only_as_a_raw_file() {
        let (dir, sr) = library(&["x.iso"], 1024);
        let attached = IsoSr.attach(&disk(&sr, "x.iso"), true).await;
        assert_eq!(
            attached.expect("an attach"),
            AttachedDisk {
                path: dir.path().join("x.iso"),
                format: DiskFormat::Raw,
                read_only: true,
            }
        );
        assert!(matches!(
            IsoSr.attach(&disk(&sr, "x.iso"), false).await,
            Err(BackendError::NotSupported {
                op: BackendOp::Attach,
                ..
            })
        ));
        for location in ["y.iso", "../x.iso", "x.qcow2"] {
            assert!(matches!(
                IsoSr.attach(&disk(&sr, location), true).await,
                Err(BackendError::NoVdi { .. })
            ));
        }
    }

    /// Every operation that writes to the SR or reads a VDI out is refused as
    /// `NotSupported`, naming it.
    #[tokio::test]
    async fn writing_operations_are_not_supported() {
        let (_dir, sr) = library(&["x.iso"], 1024);
        let iso = disk(&sr, "x.iso");
        let mut image: &[u8] = b"";
        let mut out = Vec::new();
        let results = [
            (BackendOp::CreateVdi, IsoSr.create_vdi(&sr, 1).await.err()),
            (
                BackendOp::DestroyVdi,
                IsoSr.destroy_vdi(&sr, "x.iso").await.err(),
            ),
            (
                BackendOp::ResizeVdi,
                IsoSr.resize_vdi(&sr, "x.iso", 1).await.err(),
            ),
            (
                BackendOp::SnapshotVdi,
                IsoSr.snapshot_vdi(&sr, "x.iso").await.err(),
            ),
            (
                BackendOp::CloneVdi,
                IsoSr.clone_vdi(&sr, "x.iso").await.err(),
            ),
            (
                BackendOp::Import,
                IsoSr
                    .import(&sr, &iso, ImageFormat::Raw, &mut image)
                    .await
                    .err(),
            ),
            (
                BackendOp::Export,
                IsoSr
                    .export(&sr, &iso, ImageFormat::Raw, &mut out)
                    .await
                    .err(),
            ),
        ];
        for (expected, err) in results {
            assert!(
                matches!(&err, Some(BackendError::NotSupported { op, .. }) if *op == expected),
                "{expected}: {err:?}"
            );
        }
    }
}
