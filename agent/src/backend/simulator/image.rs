//! The simulator's migration image as a stream: a header the receiver checks (the VM, the
//! saved state and a checksum of it), then as many bytes of filler as the VM's
//! `memory_static_max`, generated while written and checked while read, so that an image
//! moves as many bytes as a real guest's memory while neither end ever holds it.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::state::Image;

/// The first bytes of an image.
const MAGIC: &[u8; 8] = b"OXSIMIG1";
/// The longest header accepted, so a bad stream cannot make the reader allocate much.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// The filler is written and checked one block of this size at a time.
const BLOCK_BYTES: usize = 64 * 1024;

/// What a migration image says of the domain it was saved from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageHeader {
    pub vm: String,
    pub image: Image,
    /// The bytes of filler after the header: the VM's `memory_static_max`.
    pub memory_bytes: u64,
}

/// Writes the image of `header` to `to`: magic, header length, header (JSON), its checksum,
/// then the filler.
pub(super) async fn write(
    header: &ImageHeader,
    to: &mut (dyn AsyncWrite + Send + Unpin),
) -> io::Result<()> {
    let json = serde_json::to_vec(header).expect("a header is plain data");
    let length = u32::try_from(json.len()).expect("a header is small");
    to.write_all(MAGIC).await?;
    to.write_all(&length.to_be_bytes()).await?;
    to.write_all(&json).await?;
    let checksum = fnv1a(&json);
    to.write_all(&checksum.to_be_bytes()).await?;
    let filler = Filler::new(checksum);
    let mut block = vec![0u8; BLOCK_BYTES];
    let mut index = 0u64;
    let mut left = header.memory_bytes;
    while left > 0 {
        let size = usize::try_from(left.min(BLOCK_BYTES as u64)).expect("a block fits");
        filler.fill(index, &mut block[..size]);
        to.write_all(&block[..size]).await?;
        left -= size as u64;
        index += 1;
    }
    to.flush().await
}

/// Reads and checks an image from `from` to its end; its header.
pub(super) async fn read(from: &mut (dyn AsyncRead + Send + Unpin)) -> Result<ImageHeader, String> {
    let io = |err: io::Error| format!("cannot read the image: {err}");
    let mut magic = [0u8; 8];
    from.read_exact(&mut magic).await.map_err(io)?;
    if &magic != MAGIC {
        return Err("not a migration image".to_owned());
    }
    let length = from.read_u32().await.map_err(io)?;
    if length > MAX_HEADER_BYTES {
        return Err(format!("an image header of {length} bytes is too long"));
    }
    let mut json = vec![0u8; length as usize];
    from.read_exact(&mut json).await.map_err(io)?;
    let checksum = from.read_u64().await.map_err(io)?;
    if checksum != fnv1a(&json) {
        return Err("the image header does not match its checksum".to_owned());
    }
    let header: ImageHeader =
        serde_json::from_slice(&json).map_err(|err| format!("not an image header: {err}"))?;
    let filler = Filler::new(checksum);
    let mut block = vec![0u8; BLOCK_BYTES];
    let mut expected = vec![0u8; BLOCK_BYTES];
    let mut index = 0u64;
    let mut left = header.memory_bytes;
    while left > 0 {
        let size = usize::try_from(left.min(BLOCK_BYTES as u64)).expect("a block fits");
        from.read_exact(&mut block[..size]).await.map_err(io)?;
        filler.fill(index, &mut expected[..size]);
        if block[..size] != expected[..size] {
            let offset = index * BLOCK_BYTES as u64;
            return Err(format!("the image's memory differs near byte {offset}"));
        }
        left -= size as u64;
        index += 1;
    }
    if from.read(&mut block[..1]).await.map_err(io)? != 0 {
        return Err("the image goes on past its memory".to_owned());
    }
    Ok(header)
}

/// The filler: one pseudo-random block drawn from the header's checksum, each copy stamped
/// with its index so that a block lost, repeated or moved is caught.
struct Filler {
    pattern: Vec<u8>,
}

impl Filler {
    fn new(seed: u64) -> Filler {
        let mut state = seed | 1;
        let mut pattern = Vec::with_capacity(BLOCK_BYTES);
        while pattern.len() < BLOCK_BYTES {
            // xorshift64: cheap, and enough to make a misplaced byte show.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pattern.extend_from_slice(&state.to_le_bytes());
        }
        Filler { pattern }
    }

    /// Block `index` (or its start, for the last, shorter one) into `out`.
    fn fill(&self, index: u64, out: &mut [u8]) {
        out.copy_from_slice(&self.pattern[..out.len()]);
        let stamp = index.to_le_bytes();
        let stamped = out.len().min(stamp.len());
        out[..stamped].copy_from_slice(&stamp[..stamped]);
    }
}

/// FNV-1a, 64 bits: the header's checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(memory_bytes: u64) -> ImageHeader {
        ImageHeader {
            vm: "vm".to_owned(),
            image: Image {
                memory_bytes: 5,
                vcpus: 2,
            },
            memory_bytes,
        }
    }

    async fn written(header: &ImageHeader) -> Vec<u8> {
        let mut bytes = Vec::new();
        write(header, &mut bytes).await.expect("written");
        bytes
    }

    /// An image reads back as its header, and its length is the header's plus the memory.
    #[tokio::test]
    async fn an_image_reads_back_as_its_header() {
        let saved = header(3 * BLOCK_BYTES as u64 + 5);
        let bytes = written(&saved).await;
        assert!(bytes.len() > 3 * BLOCK_BYTES + 5);
        assert_eq!(read(&mut bytes.as_slice()).await, Ok(saved));
    }

    /// A flipped byte in the memory, a cut, or a byte too many makes the image unreadable.
    #[tokio::test]
    async fn a_damaged_image_is_refused() {
        let bytes = written(&header(2 * BLOCK_BYTES as u64)).await;
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(read(&mut flipped.as_slice()).await.is_err());
        assert!(read(&mut &bytes[..bytes.len() - 1]).await.is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&mut longer.as_slice()).await.is_err());
    }
}
