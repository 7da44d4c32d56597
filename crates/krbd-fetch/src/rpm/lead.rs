//! The lead: the first 96 bytes of every RPM. Only its magic, format version and the
//! binary/source flag still mean anything; rpm itself reads the rest from the headers.

/// The lead's fixed size.
pub const LEAD_SIZE: usize = 96;

const MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

/// The header-style signature that follows every lead written since rpm 3.
const SIGNATURE_TYPE_HEADER: u16 = 5;

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

/// Parses the lead; `Err` carries the reason for the message.
pub fn parse(bytes: &[u8; LEAD_SIZE]) -> Result<Lead, String> {
    if bytes[..4] != MAGIC {
        return Err("no RPM lead magic".into());
    }
    let (major, minor) = (bytes[4], bytes[5]);
    if !(3..=4).contains(&major) {
        return Err(format!("RPM format {major}.{minor} (only 3.x and 4.x exist)"));
    }
    let kind = u16::from_be_bytes([bytes[6], bytes[7]]);
    if kind > 1 {
        return Err(format!("lead type {kind} (0 binary, 1 source)"));
    }
    let name_bytes = &bytes[10..76];
    let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(name_bytes.len());
    let signature_type = u16::from_be_bytes([bytes[78], bytes[79]]);
    if signature_type != SIGNATURE_TYPE_HEADER {
        return Err(format!("signature type {signature_type}; only header-style signatures (5) are read"));
    }
    Ok(Lead { major, minor, is_source: kind == 1, name: String::from_utf8_lossy(&name_bytes[..end]).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(kind: u16) -> [u8; LEAD_SIZE] {
        let mut b = [0u8; LEAD_SIZE];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = 3;
        b[6..8].copy_from_slice(&kind.to_be_bytes());
        b[10..19].copy_from_slice(b"kernel-3.");
        b[78..80].copy_from_slice(&5u16.to_be_bytes());
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
        assert!(parse(&bad).unwrap_err().contains("magic"));
    }
}
