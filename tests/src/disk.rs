//! A small disk for a test host's data dir: a tmpfs of a chosen size mounted (mode 0700) where
//! the data dir goes, that the test fills up and frees again, unmounted when dropped. Mounting
//! needs root; `SmallDisk::mount` says why it cannot when it cannot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file the test fills the disk with.
const FILLER: &str = "filler";

/// A mounted tmpfs.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Why a small disk cannot be mounted here, if it cannot.
    pub fn unsupported() -> Option<String> {
        // SAFETY: geteuid(2) only reads this process's effective user id.
        let is_root = unsafe { libc::geteuid() } == 0;
        (!is_root).then(|| "mounting a tmpfs needs root".to_owned())
    }

    /// Mounts a tmpfs of `bytes` at `path` (created if missing); why not, when it cannot be.
    pub fn mount(path: &Path, bytes: u64) -> Result<SmallDisk, String> {
        if let Some(why) = SmallDisk::unsupported() {
            return Err(why);
        }
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tmpfs")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk {
            path: path.to_owned(),
        })
    }

    /// Writes a filler file until the disk is full, leaving `leave_bytes` free (0: none).
    pub fn fill(&self, leave_bytes: u64) {
        let free = self.free_bytes();
        let mut file = std::fs::File::create(self.path.join(FILLER)).expect("the filler file");
        let chunk = vec![0x5a_u8; 1 << 20];
        let mut left = free.saturating_sub(leave_bytes);
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).expect("a chunk fits usize");
            if let Err(error) = file.write_all(&chunk[..n]) {
                assert_eq!(
                    error.raw_os_error(),
                    Some(libc::ENOSPC),
                    "filling the disk: {error}"
                );
                return;
            }
            left -= n as u64;
        }
    }

    /// Removes the filler file.
    pub fn free(&self) {
        std::fs::remove_file(self.path.join(FILLER)).expect("the filler file is there");
    }

    /// The bytes free on the disk, as oxapi counts them.
    pub fn free_bytes(&self) -> u64 {
        member::space::free_bytes(&self.path).expect("statvfs of the small disk")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
