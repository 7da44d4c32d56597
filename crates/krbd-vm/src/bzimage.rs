//! Getting the uncompressed ELF `vmlinux` out of a bzImage, so that QEMU can start it at
//! its PVH entry point: that skips the real-mode setup and the in-guest decompression,
//! which under TCG halves the boot time. The extraction itself is krbd-formats'
//! ([`krbd_formats::bzimage`]), shared with the offline check of an installed kernel.

use crate::VmError;
pub use krbd_formats::bzimage::BzImageError;
use object::elf::{FileHeader64, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// Xen's ELF note type for the 32-bit PVH entry point; QEMU boots an ELF kernel through it.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Decompresses the kernel payload of a bzImage into the ELF vmlinux.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, VmError> {
    Ok(krbd_formats::bzimage::extract_vmlinux(bzimage)?)
}

/// Whether an ELF kernel carries the PVH entry note that QEMU's `-kernel` needs.
pub fn has_pvh_entry(vmlinux: &[u8]) -> bool {
    let Ok(header) = FileHeader64::<Endianness>::parse(vmlinux) else { return false };
    let Ok(endian) = header.endian() else { return false };
    let Ok(segments) = header.program_headers(endian, vmlinux) else { return false };
    for segment in segments {
        if segment.p_type(endian) != PT_NOTE {
            continue;
        }
        let Ok(Some(mut notes)) = segment.notes(endian, vmlinux) else { continue };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian).0 == XEN_ELFNOTE_PHYS32_ENTRY {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_bzimage() {
        let err = extract_vmlinux(&[0u8; 4096]).unwrap_err();
        assert!(err.to_string().contains("HdrS"), "{err}");
        assert!(!has_pvh_entry(b"\x7fELF garbage"));
    }
}
