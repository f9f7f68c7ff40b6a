//! Import and export of a file SR's VDIs as raw or qcow2 images (the HTTP handlers'
//! `import_raw_vdi` and `export_raw_vdi`), with bounded memory.
//!
//! An import never writes the VDI's file in place. The image is received into a hidden temp
//! file in the SR's directory (a raw image sparse: a chunk of zeros is skipped, not written,
//! and more bytes than the VDI holds stop the import at once), checked (a qcow2 must open as
//! qcow2 and pass `qemu-img check`, fit the VDI, and name no backing or external data file,
//! which could be any file of the host), then converted with `qemu-img convert -n` into a new
//! qcow2 of the VDI's virtual size, which is renamed over the VDI's file. So a failed import
//! leaves the VDI as it was; after one, the VDI reads as the image and as zeros past its end,
//! with no backing chain.
//!
//! An export converts the VDI (its backing chain flattened) into a hidden temp file of the
//! format asked for, then streams that file and removes it. The temp file is sparse, so it
//! takes the room of the data only. Streaming straight from `qemu-img` is not possible:
//! it cannot write either format to a pipe (it seeks past runs of zeros in a raw image, and
//! back to the header of a qcow2); a streaming path would need a `qemu-nbd` serving the image
//! for the length of the transfer, a second long-lived child per export.

use std::ffi::OsStr;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use host_api::{DiskSpec, ImageFormat, SrSpec, VdiInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use super::{EXTENSION, FileSr, existing, in_use};
use crate::backend::{BackendError, BackendOp};

/// An image is received and sent this many bytes at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// A hidden file in an SR's directory that is removed when dropped, unless kept.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// A fresh hidden name in the directory of `sr`, for a file of `format`.
    fn new(sr: &SrSpec, purpose: &str, format: ImageFormat) -> TempFile {
        let name = format!(".{purpose}-{}.{}", uuid::Uuid::new_v4(), format.name());
        TempFile {
            path: Path::new(&sr.location).join(name),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // A file never made, or renamed into place, is not there any more.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A failure to read or write the file at `path`.
fn io_failure(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError {
    let path = path.to_owned();
    move |source| BackendError::State { path, source }
}

impl FileSr {
    /// See `Storage::import`.
    pub(super) async fn import_image(
        &self,
        sr: &SrSpec,
        disk: &DiskSpec,
        format: ImageFormat,
        image: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<VdiInfo, BackendError> {
        let op = BackendOp::Import;
        let path = existing(sr, &disk.location)?;
        if self.is_attached(sr, &disk.location).await {
            return Err(in_use(sr, &disk.location, op));
        }
        let virtual_size = self.info(op, &path).await?.virtual_size;
        let received = TempFile::new(sr, "import", format);
        let limit = match format {
            ImageFormat::Raw => Some(virtual_size),
            ImageFormat::Qcow2 => None,
        };
        let bytes = receive(image, &received.path, limit)
            .await
            .map_err(|err| match err {
                Received::TooLarge { bytes } => BackendError::ImageTooLarge {
                    location: disk.location.clone(),
                    virtual_size_bytes: virtual_size,
                    image_bytes: bytes,
                },
                Received::Failed(err) => err,
            })?;
        if format == ImageFormat::Qcow2 {
            self.check_qcow2(&received.path, &disk.location, virtual_size)
                .await?;
        }
        let fresh = TempFile::new(sr, "imported", ImageFormat::Qcow2);
        self.qemu_img_sized(op, "create", &fresh.path, virtual_size)
            .await?;
        let args = [
            OsStr::new("convert"),
            OsStr::new("-q"),
            OsStr::new("-n"),
            OsStr::new("-f"),
            OsStr::new(format.name()),
            OsStr::new("-O"),
            OsStr::new(EXTENSION),
            received.path.as_os_str(),
            fresh.path.as_os_str(),
        ];
        self.qemu_img(op, &args).await?;
        if self.is_attached(sr, &disk.location).await {
            return Err(in_use(sr, &disk.location, op));
        }
        std::fs::rename(&fresh.path, &path).map_err(io_failure(&fresh.path))?;
        tracing::info!(sr = %sr.uuid, location = %disk.location, bytes, format = format.name(), "image imported");
        self.vdi_info(op, sr, &disk.location, false).await
    }

    /// Fails unless the qcow2 image at `path` opens as qcow2, passes `qemu-img check`, fits
    /// `virtual_size` and names no other file.
    async fn check_qcow2(
        &self,
        path: &Path,
        location: &str,
        virtual_size: u64,
    ) -> Result<(), BackendError> {
        let op = BackendOp::Import;
        let unusable = |err: BackendError| match err {
            BackendError::QemuImg { stderr, .. } => BackendError::ImageUnusable { reason: stderr },
            err => err,
        };
        let info = self.info(op, path).await.map_err(unusable)?;
        if info.backing_filename.is_some() || info.has_data_file() {
            return Err(BackendError::ImageUnusable {
                reason: "the qcow2 image names a backing or data file".to_owned(),
            });
        }
        if info.virtual_size > virtual_size {
            return Err(BackendError::ImageTooLarge {
                location: location.to_owned(),
                virtual_size_bytes: virtual_size,
                image_bytes: info.virtual_size,
            });
        }
        let args = [
            OsStr::new("check"),
            OsStr::new("-q"),
            OsStr::new("-f"),
            OsStr::new(EXTENSION),
            path.as_os_str(),
        ];
        self.qemu_img(op, &args).await.map_err(unusable)?;
        Ok(())
    }

    /// See `Storage::export`.
    pub(super) async fn export_image(
        &self,
        sr: &SrSpec,
        disk: &DiskSpec,
        format: ImageFormat,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<(), BackendError> {
        let op = BackendOp::Export;
        let path = existing(sr, &disk.location)?;
        if self.is_written(sr, &disk.location).await {
            return Err(in_use(sr, &disk.location, op));
        }
        let converted = TempFile::new(sr, "export", format);
        let args = [
            OsStr::new("convert"),
            OsStr::new("-q"),
            OsStr::new("-f"),
            OsStr::new(EXTENSION),
            OsStr::new("-O"),
            OsStr::new(format.name()),
            path.as_os_str(),
            converted.path.as_os_str(),
        ];
        self.qemu_img(op, &args).await?;
        let mut file = tokio::fs::File::open(&converted.path)
            .await
            .map_err(io_failure(&converted.path))?;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut bytes = 0u64;
        let sent = |err: std::io::Error| BackendError::Failed {
            op,
            reason: format!("the image could not be sent: {err}"),
        };
        loop {
            let read = file
                .read(&mut chunk)
                .await
                .map_err(io_failure(&converted.path))?;
            if read == 0 {
                break;
            }
            out.write_all(&chunk[..read]).await.map_err(sent)?;
            bytes += read as u64;
        }
        out.flush().await.map_err(sent)?;
        tracing::info!(sr = %sr.uuid, location = %disk.location, bytes, format = format.name(), "image exported");
        Ok(())
    }
}

/// Why an image could not be received.
enum Received {
    /// More than the limit arrived: at least `bytes`.
    TooLarge {
        bytes: u64,
    },
    Failed(BackendError),
}

/// Writes what `image` yields to a new file at `path`, skipping chunks of zeros (the file is
/// sparse), and stops with `TooLarge` past `limit` bytes; the byte count.
async fn receive(
    image: &mut (dyn AsyncRead + Send + Unpin),
    path: &Path,
    limit: Option<u64>,
) -> Result<u64, Received> {
    let op = BackendOp::Import;
    let file_failed = |err| Received::Failed(io_failure(path)(err));
    let mut file = tokio::fs::File::create(path).await.map_err(file_failed)?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut bytes = 0u64;
    loop {
        let read = fill(image, &mut chunk).await.map_err(|err| {
            Received::Failed(BackendError::Failed {
                op,
                reason: format!("the image broke off: {err}"),
            })
        })?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        if limit.is_some_and(|limit| bytes > limit) {
            return Err(Received::TooLarge { bytes });
        }
        let data = &chunk[..read];
        if data.iter().all(|byte| *byte == 0) {
            let skip = i64::try_from(read).expect("a chunk fits");
            file.seek(SeekFrom::Current(skip))
                .await
                .map_err(file_failed)?;
        } else {
            file.write_all(data).await.map_err(file_failed)?;
        }
    }
    // Zeros at the end were skipped: the length says where the image ends.
    file.set_len(bytes).await.map_err(file_failed)?;
    file.sync_all().await.map_err(file_failed)?;
    Ok(bytes)
}

/// Reads into `chunk` until it is full or `image` ends; how many bytes were read.
async fn fill(
    image: &mut (dyn AsyncRead + Send + Unpin),
    chunk: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < chunk.len() {
        let read = image.read(&mut chunk[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Storage;
    use crate::backend::file_sr::tests::empty_sr;
    use crate::testing::disk;

    const MIB: usize = 1 << 20;

    /// Three MiB of a pattern with a hole of zeros in the middle and at the end.
    fn patterned() -> Vec<u8> {
        let mut image: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8 | 1).collect();
        image[MIB..2 * MIB].fill(0);
        image[3 * MIB - 4096..].fill(0);
        image
    }

    /// A new VDI of `size` bytes in `sr`, as a disk.
    async fn new_disk(storage: &FileSr, sr: &SrSpec, size: u64) -> DiskSpec {
        let vdi = storage.create_vdi(sr, size).await.expect("create");
        let mut spec = disk(&vdi.location);
        spec.virtual_size_bytes = size;
        spec
    }

    async fn export(
        storage: &FileSr,
        sr: &SrSpec,
        disk: &DiskSpec,
        format: ImageFormat,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        storage
            .export(sr, disk, format, &mut out)
            .await
            .expect("export");
        out
    }

    /// A raw image with holes is the VDI's content after an import, zeros after it; exported
    /// as qcow2 and imported into another VDI, it reads the same.
    #[tokio::test]
    async fn a_raw_image_comes_back_as_imported_in_both_formats() {
        let (_dir, storage, sr) = empty_sr();
        let disk = new_disk(&storage, &sr, 4 << 20).await;
        let image = patterned();
        let vdi = storage
            .import(&sr, &disk, ImageFormat::Raw, &mut image.as_slice())
            .await
            .expect("import");
        assert_eq!(vdi.virtual_size_bytes, 4 << 20);
        assert!(vdi.physical_utilisation_bytes < 4 << 20, "sparse: {vdi:?}");
        let mut expected = image.clone();
        expected.resize(4 << 20, 0);
        assert_eq!(
            export(&storage, &sr, &disk, ImageFormat::Raw).await,
            expected
        );

        let qcow2 = export(&storage, &sr, &disk, ImageFormat::Qcow2).await;
        assert!(qcow2.starts_with(b"QFI\xfb"));
        let other = new_disk(&storage, &sr, 8 << 20).await;
        storage
            .import(&sr, &other, ImageFormat::Qcow2, &mut qcow2.as_slice())
            .await
            .expect("import qcow2");
        expected.resize(8 << 20, 0);
        assert_eq!(
            export(&storage, &sr, &other, ImageFormat::Raw).await,
            expected
        );
        let left: Vec<_> = std::fs::read_dir(&sr.location)
            .expect("the SR")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    /// An image larger than the VDI, a corrupt qcow2 and a qcow2 naming a backing file are
    /// refused, and the VDI keeps what it held.
    #[tokio::test]
    async fn refused_images_leave_the_vdi_as_it_was() {
        let (_dir, storage, sr) = empty_sr();
        let disk = new_disk(&storage, &sr, 4 << 20).await;
        let image = patterned();
        storage
            .import(&sr, &disk, ImageFormat::Raw, &mut image.as_slice())
            .await
            .expect("import");
        let before = export(&storage, &sr, &disk, ImageFormat::Raw).await;

        let large = vec![7u8; 5 << 20];
        assert!(matches!(
            storage.import(&sr, &disk, ImageFormat::Raw, &mut large.as_slice()).await,
            Err(BackendError::ImageTooLarge { image_bytes, virtual_size_bytes, .. })
                if image_bytes > virtual_size_bytes && virtual_size_bytes == 4 << 20
        ));
        let corrupt = b"QFI\xfbnot really a qcow2 image".to_vec();
        assert!(matches!(
            storage
                .import(&sr, &disk, ImageFormat::Qcow2, &mut corrupt.as_slice())
                .await,
            Err(BackendError::ImageUnusable { .. })
        ));
        let other = new_disk(&storage, &sr, 1 << 20).await;
        storage
            .snapshot_vdi(&sr, &other.location)
            .await
            .expect("snapshot");
        let overlay = std::fs::read(Path::new(&sr.location).join(&other.location)).expect("read");
        assert!(matches!(
            storage
                .import(&sr, &disk, ImageFormat::Qcow2, &mut overlay.as_slice())
                .await,
            Err(BackendError::ImageUnusable { .. })
        ));
        let big = new_disk(&storage, &sr, 8 << 20).await;
        let big_qcow2 = export(&storage, &sr, &big, ImageFormat::Qcow2).await;
        assert!(matches!(
            storage.import(&sr, &disk, ImageFormat::Qcow2, &mut big_qcow2.as_slice()).await,
            Err(BackendError::ImageTooLarge { image_bytes, .. }) if image_bytes == 8 << 20
        ));
        assert_eq!(export(&storage, &sr, &disk, ImageFormat::Raw).await, before);
    }
}
