//! The simulator as the storage driver of every SR type: VDIs are entries in its state, not
//! files; an attached VDI's path names it under `simulator/vdi/`, where nothing is written.
//! An import reads the whole image and keeps only its length and SHA-256 (`ImportedImage`),
//! so a test can tell what arrived; an export yields as many zero bytes as the last import
//! brought.

use std::collections::BTreeMap;
use std::path::PathBuf;

use host_api::{DiskSpec, ImageFormat, SrSpec, SrUsage, VdiInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::state::failed;
use super::{Simulator, quiet};
use crate::backend::storage::filesystem_usage;
use crate::backend::{AttachedDisk, BackendError, BackendOp, DiskFormat, Op, Storage};

/// What the simulated storage holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SimStorage {
    /// The VDIs attached on this host, by VDI uuid.
    pub attached: BTreeMap<String, Attachment>,
    /// The VDIs of each SR, by SR uuid, then by location.
    pub srs: BTreeMap<String, BTreeMap<String, VdiInfo>>,
    /// The number the next VDI's location is made from.
    pub next_vdi: u64,
    /// What the last import into each VDI brought, by VDI uuid.
    pub imported: BTreeMap<String, ImportedImage>,
}

/// What an import brought into a VDI: all the simulator keeps of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportedImage {
    pub format: ImageFormat,
    pub bytes: u64,
    /// The lowercase hex SHA-256 of the image's bytes.
    pub sha256: String,
}

/// The first bytes of a qcow2 image.
const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
/// An image is read and an export written this many bytes at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// One attached VDI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Attachment {
    /// The VDI's location in its SR.
    pub location: String,
    pub disk: AttachedDisk,
    /// How many attaches it has had without a detach: a read-only VDI may be in many drives,
    /// and attaching again in the same mode is harmless (as with xapi's SM backends).
    pub users: u32,
    /// How many of those have activated it.
    pub active: u32,
}

impl SimStorage {
    pub fn attach(
        &mut self,
        disk: &DiskSpec,
        read_only: bool,
    ) -> Result<AttachedDisk, BackendError> {
        if let Some(attachment) = self.attached.get_mut(&disk.vdi_uuid) {
            if read_only != attachment.disk.read_only {
                return Err(BackendError::DeviceAttached {
                    device: disk.vdi_uuid.clone(),
                });
            }
            attachment.users += 1;
            return Ok(attachment.disk.clone());
        }
        let attached = AttachedDisk {
            path: PathBuf::from("simulator/vdi").join(&disk.vdi_uuid),
            format: DiskFormat::Raw,
            read_only,
        };
        self.attached.insert(
            disk.vdi_uuid.clone(),
            Attachment {
                location: disk.location.clone(),
                disk: attached.clone(),
                users: 1,
                active: 0,
            },
        );
        Ok(attached)
    }

    pub fn activate(&mut self, disk: &DiskSpec) -> Result<(), BackendError> {
        let attachment =
            self.attached
                .get_mut(&disk.vdi_uuid)
                .ok_or_else(|| BackendError::DeviceDetached {
                    device: disk.vdi_uuid.clone(),
                })?;
        if attachment.active == attachment.users {
            return Err(failed(
                BackendOp::Activate,
                "every attach is already active",
            ));
        }
        attachment.active += 1;
        Ok(())
    }

    /// Leaves a VDI that is not active as it is.
    pub fn deactivate(&mut self, disk: &DiskSpec) {
        if let Some(attachment) = self.attached.get_mut(&disk.vdi_uuid) {
            attachment.active = attachment.active.saturating_sub(1);
        }
    }

    /// Leaves a VDI that is not attached as it is.
    pub fn detach(&mut self, disk: &DiskSpec) -> Result<(), BackendError> {
        let Some(attachment) = self.attached.get_mut(&disk.vdi_uuid) else {
            return Ok(());
        };
        if attachment.active == attachment.users {
            return Err(BackendError::InUse {
                what: format!("vdi {}", disk.vdi_uuid),
            });
        }
        attachment.users -= 1;
        if attachment.users == 0 {
            self.attached.remove(&disk.vdi_uuid);
        }
        Ok(())
    }

    pub fn create_vdi(&mut self, sr: &SrSpec, virtual_size_bytes: u64) -> VdiInfo {
        self.next_vdi += 1;
        let vdi = VdiInfo {
            location: format!("vdi-{}", self.next_vdi),
            virtual_size_bytes,
            physical_utilisation_bytes: 0,
            read_only: false,
        };
        self.srs
            .entry(sr.uuid.clone())
            .or_default()
            .insert(vdi.location.clone(), vdi.clone());
        vdi
    }

    fn vdi(&mut self, sr: &SrSpec, location: &str) -> Result<&mut VdiInfo, BackendError> {
        self.srs
            .get_mut(&sr.uuid)
            .and_then(|vdis| vdis.get_mut(location))
            .ok_or_else(|| BackendError::NoVdi {
                sr: sr.uuid.clone(),
                location: location.to_owned(),
            })
    }

    pub fn destroy_vdi(&mut self, sr: &SrSpec, location: &str) -> Result<(), BackendError> {
        self.vdi(sr, location)?;
        if self.attached.values().any(|a| a.location == location) {
            return Err(BackendError::VdiInUse {
                sr: sr.uuid.clone(),
                location: location.to_owned(),
                op: BackendOp::DestroyVdi,
            });
        }
        if let Some(vdis) = self.srs.get_mut(&sr.uuid) {
            vdis.remove(location);
        }
        Ok(())
    }

    pub fn resize_vdi(
        &mut self,
        sr: &SrSpec,
        location: &str,
        virtual_size_bytes: u64,
    ) -> Result<VdiInfo, BackendError> {
        let vdi = self.vdi(sr, location)?;
        if virtual_size_bytes < vdi.virtual_size_bytes {
            return Err(BackendError::CannotShrink {
                sr: sr.uuid.clone(),
                location: location.to_owned(),
                virtual_size_bytes: vdi.virtual_size_bytes,
                requested_bytes: virtual_size_bytes,
            });
        }
        vdi.virtual_size_bytes = virtual_size_bytes;
        Ok(vdi.clone())
    }

    /// A copy of the VDI at `location`, read-only for a snapshot.
    pub fn copy_vdi(
        &mut self,
        sr: &SrSpec,
        location: &str,
        read_only: bool,
    ) -> Result<VdiInfo, BackendError> {
        let size = self.vdi(sr, location)?.virtual_size_bytes;
        let mut copy = self.create_vdi(sr, size);
        copy.read_only = read_only;
        self.vdi(sr, &copy.location)?.read_only = read_only;
        Ok(copy)
    }

    pub fn scan(&self, sr: &SrSpec) -> Vec<VdiInfo> {
        self.srs
            .get(&sr.uuid)
            .map(|vdis| vdis.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Reads `image` to its end; what it was. A raw image larger than `disk` is
/// `ImageTooLarge` (read no further), a qcow2 one without qcow2's magic `ImageUnusable`.
async fn read_image(
    image: &mut (dyn AsyncRead + Send + Unpin),
    disk: &DiskSpec,
    format: ImageFormat,
) -> Result<ImportedImage, BackendError> {
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut bytes = 0u64;
    let mut head = Vec::new();
    loop {
        let read = image
            .read(&mut chunk)
            .await
            .map_err(|err| failed(BackendOp::Import, &format!("the image broke off: {err}")))?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        if bytes > disk.virtual_size_bytes && format == ImageFormat::Raw {
            return Err(BackendError::ImageTooLarge {
                location: disk.location.clone(),
                virtual_size_bytes: disk.virtual_size_bytes,
                image_bytes: bytes,
            });
        }
        let wanted = QCOW2_MAGIC.len() - head.len();
        head.extend_from_slice(&chunk[..read.min(wanted)]);
        hash.update(&chunk[..read]);
    }
    if format == ImageFormat::Qcow2 && !head.starts_with(QCOW2_MAGIC) {
        return Err(BackendError::ImageUnusable {
            reason: "not a qcow2 image".to_owned(),
        });
    }
    let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(ImportedImage {
        format,
        bytes,
        sha256,
    })
}

impl Storage for Simulator {
    fn attach<'a>(&'a self, disk: &'a DiskSpec, read_only: bool) -> Op<'a, AttachedDisk> {
        Box::pin(self.run(BackendOp::Attach, &disk.vdi_uuid, move |m| {
            quiet(m.storage.attach(disk, read_only))
        }))
    }

    fn activate<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::Activate, &disk.vdi_uuid, |m| {
            quiet(m.storage.activate(disk))
        }))
    }

    fn deactivate<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::Deactivate, &disk.vdi_uuid, |m| {
            m.storage.deactivate(disk);
            quiet(Ok(()))
        }))
    }

    fn detach<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::Detach, &disk.vdi_uuid, |m| {
            quiet(m.storage.detach(disk))
        }))
    }

    fn attached<'a>(&'a self, disk: &'a DiskSpec) -> Op<'a, Option<AttachedDisk>> {
        Box::pin(async move {
            Ok(self.with_state(|state| {
                let attachment = state.storage.attached.get(&disk.vdi_uuid);
                attachment.map(|attachment| attachment.disk.clone())
            }))
        })
    }

    fn create_vdi<'a>(&'a self, sr: &'a SrSpec, virtual_size_bytes: u64) -> Op<'a, VdiInfo> {
        Box::pin(self.run(BackendOp::CreateVdi, &sr.uuid, move |m| {
            quiet(Ok(m.storage.create_vdi(sr, virtual_size_bytes)))
        }))
    }

    fn destroy_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::DestroyVdi, &sr.uuid, |m| {
            quiet(m.storage.destroy_vdi(sr, location))
        }))
    }

    fn resize_vdi<'a>(
        &'a self,
        sr: &'a SrSpec,
        location: &'a str,
        virtual_size_bytes: u64,
    ) -> Op<'a, VdiInfo> {
        Box::pin(self.run(BackendOp::ResizeVdi, &sr.uuid, move |m| {
            quiet(m.storage.resize_vdi(sr, location, virtual_size_bytes))
        }))
    }

    fn snapshot_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo> {
        Box::pin(self.run(BackendOp::SnapshotVdi, &sr.uuid, |m| {
            quiet(m.storage.copy_vdi(sr, location, true))
        }))
    }

    fn clone_vdi<'a>(&'a self, sr: &'a SrSpec, location: &'a str) -> Op<'a, VdiInfo> {
        Box::pin(self.run(BackendOp::CloneVdi, &sr.uuid, |m| {
            quiet(m.storage.copy_vdi(sr, location, false))
        }))
    }

    /// The simulator's SRs are records: every one is reachable.
    fn plug_sr<'a>(&'a self, sr: &'a SrSpec, _create: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::PlugSr, &sr.uuid, |_| quiet(Ok(()))))
    }

    fn scan<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, Vec<VdiInfo>> {
        Box::pin(self.run(BackendOp::Scan, &sr.uuid, |m| quiet(Ok(m.storage.scan(sr)))))
    }

    /// A simulated SR uses what its VDIs say they take, of the filesystem of its location
    /// where that is a directory here (the local SR's is), else of exactly that much.
    fn usage<'a>(&'a self, sr: &'a SrSpec) -> Op<'a, SrUsage> {
        Box::pin(async move {
            let vdis = self
                .run(BackendOp::Scan, &sr.uuid, |m| quiet(Ok(m.storage.scan(sr))))
                .await?;
            let used = vdis
                .iter()
                .map(|vdi| vdi.physical_utilisation_bytes)
                .fold(0u64, u64::saturating_add);
            let size = filesystem_usage(std::path::Path::new(&sr.location))
                .map_or(used, |usage| usage.physical_size_bytes);
            Ok(SrUsage {
                physical_size_bytes: size,
                physical_utilisation_bytes: used,
            })
        })
    }

    fn import<'a>(
        &'a self,
        _sr: &'a SrSpec,
        disk: &'a DiskSpec,
        format: ImageFormat,
        image: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a, VdiInfo> {
        Box::pin(async move {
            let imported = read_image(image, disk, format).await?;
            self.run(BackendOp::Import, &disk.vdi_uuid, move |m| {
                if m.storage.attached.contains_key(&disk.vdi_uuid) {
                    return Err(BackendError::InUse {
                        what: format!("vdi {}", disk.vdi_uuid),
                    });
                }
                let bytes = imported.bytes;
                m.storage.imported.insert(disk.vdi_uuid.clone(), imported);
                quiet(Ok(VdiInfo {
                    location: disk.location.clone(),
                    virtual_size_bytes: disk.virtual_size_bytes,
                    physical_utilisation_bytes: bytes,
                    read_only: false,
                }))
            })
            .await
        })
    }

    fn export<'a>(
        &'a self,
        _sr: &'a SrSpec,
        disk: &'a DiskSpec,
        _format: ImageFormat,
        out: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let bytes = self
                .run(BackendOp::Export, &disk.vdi_uuid, |m| {
                    let imported = m.storage.imported.get(&disk.vdi_uuid);
                    quiet(Ok(imported.map_or(0, |image| image.bytes)))
                })
                .await?;
            let write = |err: std::io::Error| failed(BackendOp::Export, &err.to_string());
            let zeros = vec![0u8; CHUNK_BYTES];
            let mut left = bytes;
            while left > 0 {
                let size = usize::try_from(left.min(CHUNK_BYTES as u64)).expect("a chunk fits");
                out.write_all(&zeros[..size]).await.map_err(write)?;
                left -= size as u64;
            }
            out.flush().await.map_err(write)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::disk;

    fn sr() -> SrSpec {
        SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "ext".to_owned(),
            location: "/srs/sr".to_owned(),
        }
    }

    /// A VDI goes attach, activate, deactivate, detach; detach refuses an active VDI, leaves
    /// nothing attached once done, and a second release changes nothing.
    #[test]
    fn a_vdi_is_attached_activated_and_released_in_order() {
        let mut storage = SimStorage::default();
        let vdi = disk("a");
        let attached = storage.attach(&vdi, false).expect("attach");
        assert!(attached.path.ends_with(&vdi.vdi_uuid));
        storage.activate(&vdi).expect("activate");
        assert!(matches!(
            storage.detach(&vdi),
            Err(BackendError::InUse { .. })
        ));
        storage.deactivate(&vdi);
        storage.detach(&vdi).expect("detach");
        assert!(storage.attached.is_empty());
        storage.deactivate(&vdi);
        storage.detach(&vdi).expect("a second detach");
        assert!(matches!(
            storage.activate(&vdi),
            Err(BackendError::DeviceDetached { .. })
        ));
    }

    /// A VDI attached in one mode may be attached again in that mode (a shared ISO stays
    /// attached until its last detach), never in the other.
    #[test]
    fn a_vdi_is_attached_in_one_mode_until_its_last_detach() {
        let mut storage = SimStorage::default();
        let iso = disk("iso");
        storage.attach(&iso, true).expect("first drive");
        storage.attach(&iso, true).expect("second drive");
        assert!(matches!(
            storage.attach(&iso, false),
            Err(BackendError::DeviceAttached { .. })
        ));
        storage.detach(&iso).expect("first detach");
        assert!(storage.attached.contains_key(&iso.vdi_uuid));
        storage.detach(&iso).expect("last detach");
        assert!(storage.attached.is_empty());
    }

    /// Created, resized, snapshotted and cloned VDIs show in a scan; a destroyed one does not,
    /// and a VDI never shrinks.
    #[test]
    fn vdi_management_shows_in_a_scan() {
        let mut storage = SimStorage::default();
        let sr = sr();
        let base = storage.create_vdi(&sr, 1 << 30);
        let grown = storage
            .resize_vdi(&sr, &base.location, 2 << 30)
            .expect("resize");
        assert_eq!(grown.virtual_size_bytes, 2 << 30);
        assert!(matches!(
            storage.resize_vdi(&sr, &base.location, 1),
            Err(BackendError::CannotShrink { .. })
        ));
        let snapshot = storage
            .copy_vdi(&sr, &base.location, true)
            .expect("snapshot");
        let clone = storage
            .copy_vdi(&sr, &snapshot.location, false)
            .expect("clone");
        assert!(snapshot.read_only && !clone.read_only);
        assert_eq!(clone.virtual_size_bytes, 2 << 30);
        storage
            .destroy_vdi(&sr, &snapshot.location)
            .expect("destroy");
        let mut found: Vec<_> = storage.scan(&sr).into_iter().map(|v| v.location).collect();
        found.sort();
        assert_eq!(found, [base.location, clone.location]);
        assert!(matches!(
            storage.destroy_vdi(&sr, &snapshot.location),
            Err(BackendError::NoVdi { .. })
        ));
    }
}
