//! Digests (OCI image-spec descriptor.md#digests: `algorithm:encoded`) and
//! readers that hash what flows through them.

use std::io::{self, BufRead, Read};

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` digest. The image spec also
/// registers sha512; cuddy verifies sha256 only and refuses the rest, as
/// it refuses unknown algorithms (a digest cuddy cannot check is not
/// trusted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; the error says why not.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err("expected ALGORITHM:HEX".into());
        };
        let alg_ok = !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !alg_ok {
            return Err(format!("malformed algorithm {alg:?}"));
        }
        if alg != "sha256" {
            return Err(format!(
                "unsupported digest algorithm {alg:?} (cuddy verifies sha256 only)"
            ));
        }
        Self::from_hex(hex)
    }

    /// A digest from its 64 hex characters.
    pub fn from_hex(hex: &str) -> Result<Digest, String> {
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("a sha256 digest is 64 lowercase hex characters".into());
        }
        Ok(Digest { hex: hex.into() })
    }

    /// The 64 hex characters (the name of the blob, layer dir, record).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    fn of_hasher(h: Sha256) -> Digest {
        let bytes = h.finalize();
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { hex }
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut h = Sha256::new();
        h.update(bytes);
        Self::of_hasher(h)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A reader that hashes and counts every byte read through it.
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

    /// Reads what is left (to hash all of it) and returns the digest and
    /// the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::of_hasher(self.hasher), self.count))
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

/// The compression of a layer blob, from its first bytes (gzip: RFC 1952
/// ID1 ID2 = 1f 8b; zstd: RFC 8878 frame magic 28 b5 2f fd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(r: &mut impl BufRead) -> io::Result<Compression> {
        let head = r.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A zstd stream of one or more frames (RFC 8878 section 3.1: frames are
/// concatenated; `zstd -T0`/pzstd write several), decoded by the pure-Rust
/// `ruzstd`.
pub struct ZstdFrames<R: BufRead> {
    dec: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    pub fn new(r: R) -> io::Result<Self> {
        let dec = ruzstd::decoding::StreamingDecoder::new(r).map_err(io::Error::other)?;
        Ok(ZstdFrames { dec: Some(dec) })
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another follows, or the stream ends.
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let (mut src, fd) = dec.into_parts();
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            // new_with_decoder reads the next frame's header (init = reset).
            self.dec = Some(
                ruzstd::decoding::StreamingDecoder::new_with_decoder(src, fd)
                    .map_err(io::Error::other)?,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&good).unwrap().hex(), "a".repeat(64));
        let e = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap_err();
        assert!(e.contains("unsupported digest algorithm"), "{e}");
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(32))).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}/..", "a".repeat(61))).is_err());
        assert!(Digest::parse("nocolon").is_err());
        assert!(Digest::parse(&format!("SHA256:{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn hashing_reader_hashes_the_whole_stream() {
        let h = Hashing::new(&b"hello"[..]);
        let (d, n) = h.finish().unwrap();
        assert_eq!(n, 5);
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn zstd_multi_frame_and_sniffing() {
        use ruzstd::encoding::{CompressionLevel, compress_to_vec};
        let mut z = compress_to_vec(&b"first "[..], CompressionLevel::Fastest);
        z.extend(compress_to_vec(&b"second"[..], CompressionLevel::Fastest));
        let mut r = io::BufReader::new(&z[..]);
        assert_eq!(Compression::sniff(&mut r).unwrap(), Compression::Zstd);
        let mut out = String::new();
        ZstdFrames::new(r)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "first second");
        let mut plain = io::BufReader::new(&b"ustar"[..]);
        assert_eq!(Compression::sniff(&mut plain).unwrap(), Compression::None);
    }
}
