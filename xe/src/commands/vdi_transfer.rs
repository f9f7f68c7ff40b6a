//! `vdi-import` and `vdi-export`: a VDI's bytes from or to a local file, through xapi's HTTP
//! handlers (`PUT /import_raw_vdi`, `GET /export_raw_vdi`) of the host xe talks to. The file is
//! streamed a chunk at a time, never held whole; a refusal is told as the XenAPI error it
//! carries, and an export that fails removes the file it began.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use api_client::{ClientError, Download};
use api_spec::{ApiError, Value, errors};
use indicatif::ProgressBar;
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::select;
use crate::tasks::progress_bar;

const IMPORT: &str = "/import_raw_vdi";
const EXPORT: &str = "/export_raw_vdi";

/// `vdi-import uuid= filename= [format=]`.
pub async fn import(session: &Session, params: &Params) -> Result<(), XeError> {
    let path = filename(params);
    let read_failed = |source| XeError::Read {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).await.map_err(read_failed)?;
    let length = file.metadata().await.map_err(read_failed)?.len();
    let vdi = vdi(session, params).await?;
    let query = [("vdi", vdi.as_str()), ("format", format(params))];
    let bar = progress_bar("VDI import");
    let body = Counted {
        inner: file,
        done: 0,
        total: length,
        bar: bar.clone(),
    };
    let reply = session.put_stream(IMPORT, &query, body, length).await;
    bar.finish_and_clear();
    let reply = reply?;
    match reply.status {
        200 => Ok(()),
        status => Err(refusal(session, IMPORT, status, &reply.body)),
    }
}

/// `vdi-export uuid= filename= [format=]`: the file is made only once the host has accepted.
pub async fn export(session: &Session, params: &Params) -> Result<(), XeError> {
    let path = filename(params);
    let vdi = vdi(session, params).await?;
    let format = format(params);
    // A raw image is as long as the disk: its progress is known.
    let total = match format {
        "raw" => {
            let size = session
                .call("VDI.get_virtual_size", vec![Value::str(vdi.as_str())])
                .await?;
            size.as_int().and_then(|s| u64::try_from(s).ok())
        }
        _ => None,
    };
    let query = [("vdi", vdi.as_str()), ("format", format)];
    let mut download = session.get_stream(EXPORT, &query).await?;
    if download.status() != 200 {
        let status = download.status();
        let reply = download.into_reply().await;
        let reply = reply.map_err(|e| session.transfer_error(EXPORT, e))?;
        return Err(refusal(session, EXPORT, status, &reply.body));
    }
    let file = File::create(&path).await.map_err(|source| XeError::Write {
        path: path.clone(),
        source,
    })?;
    let bar = match total {
        Some(_) => progress_bar("VDI export"),
        None => ProgressBar::hidden(),
    };
    let written = write_out(session, &mut download, file, &path, total, &bar).await;
    bar.finish_and_clear();
    if written.is_err() {
        // Half an image must not pass for a whole one.
        let _ = tokio::fs::remove_file(&path).await;
    }
    written
}

/// Writes the body of `download` into `file` (at `path`) as it comes.
async fn write_out(
    session: &Session,
    download: &mut Download,
    mut file: File,
    path: &Path,
    total: Option<u64>,
    bar: &ProgressBar,
) -> Result<(), XeError> {
    let write_failed = |source| XeError::Write {
        path: path.to_owned(),
        source,
    };
    let mut done = 0;
    loop {
        let chunk = download.chunk().await;
        let chunk = chunk.map_err(|e: ClientError| session.transfer_error(EXPORT, e))?;
        let Some(chunk) = chunk else { break };
        let chunk = chunk.as_ref();
        file.write_all(chunk).await.map_err(write_failed)?;
        done += chunk.len() as u64;
        if let Some(total) = total {
            bar.set_position(percent(done, total));
        }
    }
    file.flush().await.map_err(write_failed)
}

fn filename(params: &Params) -> PathBuf {
    PathBuf::from(params.get("filename").unwrap_or_default())
}

fn format(params: &Params) -> &str {
    params.get("format").unwrap_or("raw")
}

/// The ref of the VDI `uuid=` names.
async fn vdi(session: &Session, params: &Params) -> Result<String, XeError> {
    select::by_uuid(session, "VDI", params.get("uuid").unwrap_or_default()).await
}

/// What a handler's answer other than 200 says: 401 is an invalid session; otherwise the body
/// is the XenAPI error as a JSON array (`["VDI_IN_USE", "OpaqueRef:…", "import"]`).
fn refusal(session: &Session, path: &str, status: u16, body: &[u8]) -> XeError {
    if status == 401 {
        let error = ApiError::new(errors::SESSION_INVALID, Vec::<String>::new());
        return XeError::api(path, error);
    }
    match serde_json::from_slice::<Vec<String>>(body).ok().as_deref() {
        Some([code, params @ ..]) => XeError::api(path, ApiError::new(code, params.to_vec())),
        _ => session.transfer_error(
            path,
            ClientError::Status {
                url: path.to_owned(),
                status,
            },
        ),
    }
}

/// How far `done` of `total` bytes is, in percent.
fn percent(done: u64, total: u64) -> u64 {
    (done.saturating_mul(100) / total.max(1)).min(100)
}

/// A file read for an import, its progress shown as it is read.
struct Counted {
    inner: File,
    done: u64,
    total: u64,
    bar: ProgressBar,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.done += (buf.filled().len() - before) as u64;
        let position = percent(self.done, self.total);
        self.bar.set_position(position);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Progress is a percentage that never passes 100, even for an empty file.
    #[test]
    fn progress_is_a_bounded_percentage() {
        assert_eq!(percent(0, 200), 0);
        assert_eq!(percent(50, 200), 25);
        assert_eq!(percent(300, 200), 100);
        assert_eq!(percent(0, 0), 0);
    }
}
