//! The frames of a peer stream: a 4-byte big-endian length, then the frame as MessagePack
//! (`rmp_serde::to_vec_named`), at most `MAX_FRAME_BYTES`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame, in bytes: a snapshot of the whole pool DB travels in one.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// One frame on a peer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame of a stream: who dials.
    Hello { node: u64 },
    /// A raft-rs `Message`, protobuf-encoded.
    Raft(Bytes),
    /// A frame of the links layer, opaque here.
    Link(Bytes),
    /// Nothing but a sign of life, on a stream that has carried nothing else for a ping
    /// interval; the accepting end writes only these. Last, so that adding it left the
    /// encoding of the others as it was.
    Ping,
}

/// Bytes encoded as one MessagePack `bin`, not as an array of numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(bytes.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(bytes))
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer stream failed")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes is over the limit")]
    TooLarge { size: usize },
    #[error("frame could not be decoded")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Writes `frame`, without flushing.
pub async fn write<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame) -> Result<(), FrameError> {
    let body = rmp_serde::to_vec_named(frame).expect("a frame is plain data and always encodes");
    let size = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_FRAME_BYTES)
        .ok_or(FrameError::TooLarge { size: body.len() })?;
    writer.write_all(&size.to_be_bytes()).await?;
    writer.write_all(&body).await?;
    Ok(())
}

/// Reads the next frame; `None` when the stream ends cleanly between two frames.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        let count = reader.read(&mut header[filled..]).await?;
        if count == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += count;
    }
    let size = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if size > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { size });
    }
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    Ok(Some(rmp_serde::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames written one after the other read back in order, bytes as one `bin`, then a
    /// clean end.
    #[tokio::test]
    async fn frames_read_back_in_order() {
        let frames = [
            Frame::Hello { node: 7 },
            Frame::Raft(Bytes(vec![0xff; 300])),
            Frame::Link(Bytes(Vec::new())),
        ];
        let mut wire = Vec::new();
        for frame in &frames {
            write(&mut wire, frame).await.expect("write");
        }
        let hello_size = u32::from_be_bytes(wire[0..4].try_into().expect("4 bytes"));
        let at = 4 + usize::try_from(hello_size).expect("small");
        let raft_size = u32::from_be_bytes(wire[at..at + 4].try_into().expect("4 bytes"));
        assert!(raft_size < 320, "bytes must be packed: {raft_size}");
        let mut reader = wire.as_slice();
        for frame in &frames {
            assert_eq!(read(&mut reader).await.expect("read").as_ref(), Some(frame));
        }
        assert_eq!(read(&mut reader).await.expect("end"), None);
    }

    /// A ping reads back, and the frames that were there before it keep their bytes: a host
    /// that knows pings decodes what an older one sent.
    #[tokio::test]
    async fn ping_reads_back_and_older_frames_keep_their_encoding() {
        let mut wire = Vec::new();
        write(&mut wire, &Frame::Ping).await.expect("write");
        let mut reader = wire.as_slice();
        assert_eq!(read(&mut reader).await.expect("read"), Some(Frame::Ping));
        let hello = rmp_serde::to_vec_named(&Frame::Hello { node: 7 }).expect("encodes");
        assert_eq!(hello, b"\x81\xa5Hello\x81\xa4node\x07");
        let link = rmp_serde::to_vec_named(&Frame::Link(Bytes(vec![1]))).expect("encodes");
        assert_eq!(link, b"\x81\xa4Link\xc4\x01\x01");
    }

    /// A length over the limit is refused before anything is allocated for it.
    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let header = u32::try_from(MAX_FRAME_BYTES + 1)
            .expect("fits")
            .to_be_bytes();
        let mut reader = header.as_slice();
        assert!(matches!(
            read(&mut reader).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    /// A stream cut in the middle of a frame is an error, not a clean end.
    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut wire = Vec::new();
        write(&mut wire, &Frame::Hello { node: 1 })
            .await
            .expect("write");
        wire.pop();
        let mut reader = wire.as_slice();
        assert!(matches!(read(&mut reader).await, Err(FrameError::Io(_))));
        let mut reader: &[u8] = &[0, 0];
        assert!(matches!(read(&mut reader).await, Err(FrameError::Io(_))));
    }
}
