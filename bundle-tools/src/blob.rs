//! Content checks and decompression: digests and sizes of blobs, DiffIDs of layers, gzip/zstd/plain by media type and magic.

use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Largest JSON blob (index, manifest, config) we are willing to read into memory.
pub const JSON_LIMIT: u64 = 32 << 20;

/// A reader that hashes and counts everything that passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read the rest of the stream (tar padding, trailing blocks) so the hash covers all of it.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// The `sha256:<hex>` digest and byte count of what was read.
    pub fn finish(self) -> (String, u64, R) {
        (
            hex_digest(self.hasher.finalize().as_slice()),
            self.count,
            self.inner,
        )
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_of(bytes: &[u8]) -> String {
    hex_digest(Sha256::digest(bytes).as_slice())
}

/// Check that a digest string is `sha256:` followed by 64 lowercase hex digits and return the hex part.
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(Error::Format(format!(
            "digest `{digest}`: not a sha256 digest (only sha256 is supported)"
        ))),
    }
}

/// Compare what was read with what the descriptor promised.
pub fn verify(
    what: &'static str,
    name: &str,
    want_digest: &str,
    want_size: Option<u64>,
    got: (&str, u64),
) -> Result<()> {
    if let Some(size) = want_size {
        if size != got.1 {
            return Err(Error::Integrity {
                what,
                name: name.to_string(),
                reason: format!("size is {} bytes, descriptor says {size}", got.1),
            });
        }
    }
    if want_digest != got.0 {
        return Err(Error::Integrity {
            what,
            name: name.to_string(),
            reason: format!("digest is {}, expected {want_digest}", got.0),
        });
    }
    Ok(())
}

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer media type; `None` means the media type is not a layer we know.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// From the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wrap a (compressed) layer stream in the right decoder; `declared` comes from the media type when there is one.
pub fn decoder<'a, R: Read + 'a>(
    raw: R,
    declared: Option<Compression>,
    name: &str,
) -> Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let head = buf.fill_buf().map_err(|e| Error::Integrity {
        what: "layer",
        name: name.to_string(),
        reason: format!("read: {e}"),
    })?;
    let sniffed = Compression::sniff(head);
    if let Some(d) = declared {
        if d != sniffed {
            return Err(Error::Integrity {
                what: "layer",
                name: name.to_string(),
                reason: format!("media type says {d:?} but the content looks like {sniffed:?}"),
            });
        }
    }
    Ok(match sniffed {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(|e| {
                Error::Integrity {
                    what: "layer",
                    name: name.to_string(),
                    reason: format!("zstd: {e}"),
                }
            })?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_format() {
        let d = sha256_of(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_hex(&d).is_ok());
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex("sha512:00").is_err());
    }

    #[test]
    fn sniffing_and_mismatch() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"hello"), Compression::None);
        let err = decoder(&b"plain tar bytes"[..], Some(Compression::Gzip), "l0").err();
        assert!(err.is_some_and(|e| e.to_string().contains("media type says Gzip")));
    }
}
