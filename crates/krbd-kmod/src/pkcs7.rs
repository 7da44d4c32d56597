//! Just enough DER to name who signed a module: the appended signature is a detached
//! PKCS#7 `SignedData` whose first `SignerInfo` identifies the key by issuer and serial
//! number (or by subject key identifier) and names the digest algorithm. Nothing is
//! verified cryptographically.

use serde::Serialize;

/// What the signature says about its signer (`modinfo`'s signer, sig_key, sig_hashalgo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerInfo {
    /// The issuer's common name (the whole issuer name when it has none), or `None` when the
    /// key is named only by its subject key identifier.
    pub signer: Option<String>,
    /// The certificate serial number (or subject key identifier), hex bytes joined by `:`.
    pub key_id: String,
    /// The digest: sha1, sha224, sha256, sha384, sha512, sha3-256, … or the OID.
    pub hash: String,
}

struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Splits the first DER element off `data`.
fn next(data: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let body = data.get(header..end)?;
    Some((Tlv { tag, body }, &data[end..]))
}

/// The elements inside a constructed element's body.
fn children(body: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (tlv, r) = next(rest)?;
        out.push(tlv);
        rest = r;
    }
    Some(out)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

fn hash_name(oid: &[u8]) -> String {
    const NIST: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    if oid == [0x2b, 0x0e, 0x03, 0x02, 0x1a] {
        return "sha1".into();
    }
    if let Some(&[last]) = oid.strip_prefix(NIST) {
        let name = match last {
            1 => "sha256",
            2 => "sha384",
            3 => "sha512",
            4 => "sha224",
            8 => "sha3-256",
            9 => "sha3-384",
            10 => "sha3-512",
            _ => "",
        };
        if !name.is_empty() {
            return name.into();
        }
    }
    format!("oid:{}", hex_colon(oid))
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The issuer name's CN, else every attribute value joined by `, `.
fn name_text(name: &[u8]) -> Option<String> {
    let mut values = Vec::new();
    for rdn in children(name)? {
        for atv in children(rdn.body)? {
            let parts = children(atv.body)?;
            let (oid, value) = (parts.first()?, parts.get(1)?);
            let text = String::from_utf8_lossy(value.body).into_owned();
            if oid.body == COMMON_NAME {
                return Some(text);
            }
            values.push(text);
        }
    }
    Some(values.join(", "))
}

/// Parses a module signature's PKCS#7 blob; `None` when it is not one.
pub fn parse_signer(der: &[u8]) -> Option<SignerInfo> {
    let (content_info, _) = next(der)?;
    if content_info.tag != SEQUENCE {
        return None;
    }
    let ci = children(content_info.body)?;
    if ci.first()?.tag != OID || ci[0].body != SIGNED_DATA || ci.get(1)?.tag != CONTEXT_0 {
        return None;
    }
    let (signed_data, _) = next(ci[1].body)?;
    let sd = children(signed_data.body)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    let signer_infos = sd.iter().rev().find(|t| t.tag == SET)?;
    let (first_signer, _) = next(signer_infos.body)?;
    let si = children(first_signer.body)?;
    let sid = si.get(1)?;
    let (signer, key_id) = if sid.tag == SEQUENCE {
        let parts = children(sid.body)?;
        let issuer = parts.first()?;
        let serial = parts.get(1)?.body;
        // DER pads a serial whose top bit is set with a zero byte to keep it positive.
        let serial = match serial {
            [0, rest @ ..] if rest.first().is_some_and(|b| *b & 0x80 != 0) => rest,
            s => s,
        };
        (name_text(issuer.body), hex_colon(serial))
    } else {
        // [0] IMPLICIT SubjectKeyIdentifier
        (None, hex_colon(sid.body))
    };
    let digest = si.get(2)?;
    let digest_oid = children(digest.body)?.into_iter().next()?;
    if digest_oid.tag != OID {
        return None;
    }
    Some(SignerInfo { signer, key_id, hash: hash_name(digest_oid.body) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_foreign_der_is_none() {
        assert!(parse_signer(&[]).is_none());
        assert!(parse_signer(&[0x30, 0x82, 0xff]).is_none());
        assert!(parse_signer(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_none());
    }

    #[test]
    fn hash_oids_have_names() {
        assert_eq!(hash_name(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]), "sha256");
        assert_eq!(hash_name(&[0x2b, 0x0e, 0x03, 0x02, 0x1a]), "sha1");
        assert_eq!(hash_name(&[1, 2]), "oid:01:02");
    }
}
