//! Tag numbers (rpmtag.h numbering), dependency flags and the hash algorithm numbers rpm
//! records, for the reader and the writer alike.

// Region tags: the first index entry of a header, whose trailer spans the whole index.
pub const HEADERSIGNATURES: u32 = 62;
pub const HEADERIMMUTABLE: u32 = 63;
pub const HEADERI18NTABLE: u32 = 100;

// Main header tags.
pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const SUMMARY: u32 = 1004;
pub const DESCRIPTION: u32 = 1005;
pub const BUILDTIME: u32 = 1006;
pub const BUILDHOST: u32 = 1007;
pub const SIZE: u32 = 1009;
pub const LICENSE: u32 = 1014;
pub const GROUP: u32 = 1016;
pub const OS: u32 = 1021;
pub const ARCH: u32 = 1022;
pub const POSTIN: u32 = 1024;
pub const POSTUN: u32 = 1026;
pub const OLDFILENAMES: u32 = 1027;
pub const FILESIZES: u32 = 1028;
pub const FILEMODES: u32 = 1030;
pub const FILERDEVS: u32 = 1033;
pub const FILEMTIMES: u32 = 1034;
pub const FILEDIGESTS: u32 = 1035;
pub const FILELINKTOS: u32 = 1036;
pub const FILEFLAGS: u32 = 1037;
pub const FILEUSERNAME: u32 = 1039;
pub const FILEGROUPNAME: u32 = 1040;
pub const SOURCERPM: u32 = 1044;
pub const FILEVERIFYFLAGS: u32 = 1045;
pub const PROVIDENAME: u32 = 1047;
pub const REQUIREFLAGS: u32 = 1048;
pub const REQUIRENAME: u32 = 1049;
pub const REQUIREVERSION: u32 = 1050;
pub const RPMVERSION: u32 = 1064;
pub const POSTINPROG: u32 = 1086;
pub const POSTUNPROG: u32 = 1088;
pub const FILEDEVICES: u32 = 1095;
pub const FILEINODES: u32 = 1096;
pub const FILELANGS: u32 = 1097;
pub const PROVIDEFLAGS: u32 = 1112;
pub const PROVIDEVERSION: u32 = 1113;
pub const DIRINDEXES: u32 = 1116;
pub const BASENAMES: u32 = 1117;
pub const DIRNAMES: u32 = 1118;
pub const PAYLOADFORMAT: u32 = 1124;
pub const PAYLOADCOMPRESSOR: u32 = 1125;
pub const PAYLOADFLAGS: u32 = 1126;
pub const FILEDIGESTALGO: u32 = 5011;
pub const PAYLOADDIGEST: u32 = 5092;
pub const PAYLOADDIGESTALGO: u32 = 5093;

// Signature header tags.
pub const SIG_SIZE: u32 = 1000;
pub const SIG_PGP: u32 = 1002;
pub const SIG_MD5: u32 = 1004;
pub const SIG_GPG: u32 = 1005;
pub const SIG_PAYLOADSIZE: u32 = 1007;
pub const SIG_DSA: u32 = 267;
pub const SIG_RSA: u32 = 268;
pub const SIG_SHA1: u32 = 269;
pub const SIG_LONGSIZE: u32 = 270;
pub const SIG_SHA256: u32 = 273;

/// OpenPGP hash algorithm numbers, as `PAYLOADDIGESTALGO` and `FILEDIGESTALGO` use them.
pub const HASH_MD5: u32 = 1;
pub const HASH_SHA256: u32 = 8;
pub const HASH_SHA512: u32 = 10;

// Dependency flags (`RPMSENSE_*`) of `REQUIREFLAGS` and `PROVIDEFLAGS`.
pub const SENSE_LESS: u32 = 1 << 1;
pub const SENSE_GREATER: u32 = 1 << 2;
pub const SENSE_EQUAL: u32 = 1 << 3;
pub const SENSE_INTERP: u32 = 1 << 8;
pub const SENSE_SCRIPT_POST: u32 = 1 << 10;
pub const SENSE_SCRIPT_POSTUN: u32 = 1 << 12;
pub const SENSE_RPMLIB: u32 = 1 << 24;

/// `FILEFLAGS`: a documentation file (`%doc`).
pub const FILE_CONFIG: u32 = 1 << 0;
pub const FILE_DOC: u32 = 1 << 1;
pub const FILE_NOREPLACE: u32 = 1 << 4;

/// The comparison a dependency's flags ask for (`<`, `>=`, ...), or `""` for none.
pub fn sense_operator(flags: u32) -> &'static str {
    match flags & (SENSE_LESS | SENSE_GREATER | SENSE_EQUAL) {
        SENSE_LESS => "<",
        SENSE_GREATER => ">",
        SENSE_EQUAL => "=",
        f if f == SENSE_LESS | SENSE_EQUAL => "<=",
        f if f == SENSE_GREATER | SENSE_EQUAL => ">=",
        _ => "",
    }
}

/// A dependency as rpm prints it: `name`, or `name op version`.
pub fn render_dependency(name: &str, flags: u32, version: &str) -> String {
    let op = sense_operator(flags);
    if op.is_empty() || version.is_empty() {
        name.to_string()
    } else {
        format!("{name} {op} {version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_as_rpm_prints_them() {
        assert_eq!(render_dependency("kernel-uname-r", SENSE_EQUAL, "6.1.0"), "kernel-uname-r = 6.1.0");
        let rpmlib = SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL;
        assert_eq!(render_dependency("rpmlib(FileDigests)", rpmlib, "4.6.0-1"), "rpmlib(FileDigests) <= 4.6.0-1");
        assert_eq!(render_dependency("x", SENSE_GREATER | SENSE_EQUAL, "1"), "x >= 1");
        assert_eq!(render_dependency("/bin/sh", SENSE_INTERP | SENSE_SCRIPT_POST, ""), "/bin/sh");
        assert_eq!(render_dependency("kmod(rbd.ko)", 0, ""), "kmod(rbd.ko)");
        assert_eq!(sense_operator(SENSE_LESS | SENSE_GREATER), "");
    }
}
