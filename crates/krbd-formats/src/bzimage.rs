//! The ELF `vmlinux` inside an x86 bzImage (`/boot/vmlinuz-<release>`): the boot test boots
//! it directly, and the offline check reads the kernel's export tables from it.
//!
//! Layout (Documentation/arch/x86/boot.rst): the setup header sits at 0x1f1; `setup_sects`
//! (0x1f1) says how many 512-byte sectors of setup code follow the boot sector, and from
//! protocol 2.08 on, `payload_offset` (0x248) and `payload_length` (0x24c) locate the
//! compressed kernel relative to the start of the protected-mode code. The payload is the
//! kernel's ELF image with its symbol table stripped but its sections kept.

use crate::compress::{self, Compression, Streams};

fn le16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}
fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Why no vmlinux could be taken from a bzImage.
#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    #[error("no \"HdrS\" setup header at 0x202: not an x86 bzImage")]
    NoSetupHeader,
    #[error("boot protocol {version:#x} predates payload_offset (2.08)")]
    OldBootProtocol { version: u16 },
    #[error("truncated setup header")]
    TruncatedSetupHeader,
    #[error("payload {start}+{length} lies outside the {file_len}-byte file")]
    PayloadOutsideFile { start: usize, length: u32, file_len: usize },
    #[error("payload compression not supported (magic {magic:02x?}); boot the bzImage instead")]
    UnsupportedCompression { magic: Vec<u8> },
    #[error("payload decompression failed: {source}")]
    Decompression { source: std::io::Error },
    #[error("the decompressed payload is not an ELF file")]
    NotElf,
}

/// Decompresses the kernel payload of a bzImage into the ELF vmlinux.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let payload = payload_of(bzimage)?;
    if Compression::sniff(payload) == Compression::None {
        return Err(BzImageError::UnsupportedCompression { magic: payload[..payload.len().min(6)].to_vec() });
    }
    // The build appends the uncompressed size (4 bytes) after the stream: read one only.
    let out =
        compress::decompress(payload, Streams::First).map_err(|e| BzImageError::Decompression { source: e.source })?;
    if !out.starts_with(b"\x7fELF") {
        return Err(BzImageError::NotElf);
    }
    Ok(out)
}

/// The compressed kernel inside a bzImage, located through its setup header.
fn payload_of(bzimage: &[u8]) -> Result<&[u8], BzImageError> {
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(BzImageError::NoSetupHeader);
    }
    let version = le16(bzimage, 0x206).unwrap_or(0);
    if version < 0x208 {
        return Err(BzImageError::OldBootProtocol { version });
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4, // a zero means 4, for historical reasons
        n => n as usize,
    };
    let (Some(offset), Some(length)) = (le32(bzimage, 0x248), le32(bzimage, 0x24c)) else {
        return Err(BzImageError::TruncatedSetupHeader);
    };
    let start = (setup_sects + 1) * 512 + offset as usize;
    bzimage.get(start..start + length as usize).ok_or(BzImageError::PayloadOutsideFile {
        start,
        length,
        file_len: bzimage.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_bzimage() {
        let err = extract_vmlinux(&[0u8; 4096]).unwrap_err();
        assert!(err.to_string().contains("HdrS"), "{err}");
    }

    #[test]
    fn rejects_payload_outside_file() {
        let mut img = vec![0u8; 2048];
        img[0x1f1] = 1;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&100_000u32.to_le_bytes());
        let err = extract_vmlinux(&img).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
