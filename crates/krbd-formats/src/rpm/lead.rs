//! The lead: the first 96 bytes of every RPM. Only its magic, format version and the
//! binary/source flag still mean anything; rpm itself reads the rest from the headers.
//!
//! Layout: magic (4), major and minor version (1 each), type (u16: 0 binary, 1 source),
//! architecture (u16), the `name-version-release` (66 bytes, NUL-padded), OS (u16),
//! signature type (u16), 16 reserved bytes. Numbers are big-endian.

/// The lead's fixed size.
pub const LEAD_SIZE: usize = 96;

const MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

/// The header-style signature that follows every lead written since rpm 3.
const SIGNATURE_TYPE_HEADER: u16 = 5;

/// The name field's size; the last byte stays NUL.
const NAME_LEN: usize = 66;

/// The lead's architecture and OS numbers for x86 and Linux (rpmrc's `arch_canon` and
/// `os_canon`); rpm ignores them but writes them.
const ARCH_X86: u16 = 1;
const OS_LINUX: u16 = 1;

/// What the lead says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub major: u8,
    pub minor: u8,
    /// A source package (`.src.rpm`).
    pub is_source: bool,
    /// `name-version-release` as the builder wrote it (truncated to 65 bytes).
    pub name: String,
}

/// Why 96 bytes are not an RPM lead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadError {
    #[error("no RPM lead magic")]
    NoMagic,
    #[error("RPM format {major}.{minor} (only 3.x and 4.x exist)")]
    Format { major: u8, minor: u8 },
    #[error("lead type {kind} (0 binary, 1 source)")]
    Kind { kind: u16 },
    #[error("signature type {signature_type}; only header-style signatures (5) are read")]
    SignatureType { signature_type: u16 },
}

/// Parses the lead.
pub fn parse(bytes: &[u8; LEAD_SIZE]) -> Result<Lead, LeadError> {
    if bytes[..4] != MAGIC {
        return Err(LeadError::NoMagic);
    }
    let (major, minor) = (bytes[4], bytes[5]);
    if !(3..=4).contains(&major) {
        return Err(LeadError::Format { major, minor });
    }
    let kind = u16::from_be_bytes([bytes[6], bytes[7]]);
    if kind > 1 {
        return Err(LeadError::Kind { kind });
    }
    let name_bytes = &bytes[10..10 + NAME_LEN];
    let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(name_bytes.len());
    let signature_type = u16::from_be_bytes([bytes[78], bytes[79]]);
    if signature_type != SIGNATURE_TYPE_HEADER {
        return Err(LeadError::SignatureType { signature_type });
    }
    Ok(Lead { major, minor, is_source: kind == 1, name: String::from_utf8_lossy(&name_bytes[..end]).into_owned() })
}

impl Lead {
    /// The lead of a format 3.0 binary package named `name-version-release`.
    pub fn binary(name: &str) -> Lead {
        Lead { major: 3, minor: 0, is_source: false, name: name.to_string() }
    }

    /// The 96 bytes, for x86 and Linux, with a header-style signature.
    pub fn to_bytes(&self) -> [u8; LEAD_SIZE] {
        let mut l = [0u8; LEAD_SIZE];
        l[..4].copy_from_slice(&MAGIC);
        l[4] = self.major;
        l[5] = self.minor;
        l[6..8].copy_from_slice(&u16::from(self.is_source).to_be_bytes());
        l[8..10].copy_from_slice(&ARCH_X86.to_be_bytes());
        let name = self.name.as_bytes();
        let len = name.len().min(NAME_LEN - 1);
        l[10..10 + len].copy_from_slice(&name[..len]);
        l[76..78].copy_from_slice(&OS_LINUX.to_be_bytes());
        l[78..80].copy_from_slice(&SIGNATURE_TYPE_HEADER.to_be_bytes());
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(kind: u16) -> [u8; LEAD_SIZE] {
        let mut b = Lead::binary("kernel-3.").to_bytes();
        b[6..8].copy_from_slice(&kind.to_be_bytes());
        b
    }

    #[test]
    fn source_and_binary_leads() {
        assert!(parse(&lead(1)).unwrap().is_source);
        let l = parse(&lead(0)).unwrap();
        assert!(!l.is_source);
        assert_eq!(l.name, "kernel-3.");
        assert!(parse(&lead(7)).is_err());
        let mut bad = lead(0);
        bad[0] = 0;
        assert!(parse(&bad).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn written_leads_read_back_with_long_names_truncated() {
        let long = "k".repeat(100);
        let l = parse(&Lead::binary(&long).to_bytes()).unwrap();
        assert_eq!((l.major, l.minor, l.is_source, l.name.len()), (3, 0, false, 65));
        let mut old = Lead::binary("x").to_bytes();
        old[78..80].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(parse(&old), Err(LeadError::SignatureType { signature_type: 1 }));
        let mut v2 = Lead::binary("x").to_bytes();
        v2[4] = 2;
        assert_eq!(parse(&v2), Err(LeadError::Format { major: 2, minor: 0 }));
    }
}
