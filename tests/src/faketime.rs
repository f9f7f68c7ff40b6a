//! A wall clock of its own for an `oxapi` process, through libfaketime (Debian's `faketime`
//! package, which `tests/run` installs): the process sees the real time shifted by an offset
//! that it reads from a file at every reading, so a test can make the clock jump while the
//! process runs. The monotonic clock stays real.

use std::path::PathBuf;

/// Where Debian installs libfaketime's build for multi-threaded programs.
fn library() -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/faketime/libfaketimeMT.so.1"),
        "/usr/lib/faketime/libfaketimeMT.so.1".to_owned(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

/// A shifted wall clock that processes started with `env` read.
pub struct FakeClock {
    library: PathBuf,
    dir: tempfile::TempDir,
}

impl FakeClock {
    /// A clock `offset` away from the real one, in libfaketime's relative form (`"+0"`,
    /// `"+2d"`, `"-90s"`); `None` when libfaketime is not installed.
    pub fn new(offset: &str) -> Option<FakeClock> {
        let library = library()?;
        let dir = tempfile::Builder::new()
            .prefix("oxapi-faketime-")
            .tempdir()
            .expect("a temp dir for the clock");
        let clock = FakeClock { library, dir };
        clock.set(offset);
        Some(clock)
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("offset")
    }

    /// The environment that gives a process this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", self.library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file().display().to_string()),
            // Read the file at every reading, so that a change shows at once.
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Moves the clock to `offset` from the real time, at once, in every process that has it.
    pub fn set(&self, offset: &str) {
        // Written aside and renamed, so that no reading sees half a file.
        let next = self.dir.path().join("offset.next");
        std::fs::write(&next, format!("{offset}\n")).expect("offset written");
        std::fs::rename(&next, self.file()).expect("offset renamed");
    }
}
