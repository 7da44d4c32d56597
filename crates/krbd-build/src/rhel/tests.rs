//! The catalog's answers for real releases, as explicit tables of expected URLs.

use super::*;

fn urls(locs: &[Location]) -> Vec<&str> {
    locs.iter().map(|l| l.url.as_str()).collect()
}

#[test]
fn centos7_ga_kernels_are_in_os_of_their_minor_release() {
    let m = Mirrors::default();
    // (release, vault folder) for every CentOS 7 minor release's GA kernel.
    let table = [
        ("3.10.0-123.el7.x86_64", "7.0.1406"),
        ("3.10.0-229.el7.x86_64", "7.1.1503"),
        ("3.10.0-327.el7.x86_64", "7.2.1511"),
        ("3.10.0-514.el7.x86_64", "7.3.1611"),
        ("3.10.0-693.el7.x86_64", "7.4.1708"),
        ("3.10.0-862.el7.x86_64", "7.5.1804"),
        ("3.10.0-957.el7.x86_64", "7.6.1810"),
        ("3.10.0-1062.el7.x86_64", "7.7.1908"),
        ("3.10.0-1127.el7.x86_64", "7.8.2003"),
        ("3.10.0-1160.el7.x86_64", "7.9.2009"),
    ];
    for (release, folder) in table {
        let r = resolve(release, &m, None).unwrap();
        let rel = release.trim_end_matches(".x86_64");
        let v = rel.trim_start_matches("3.10.0-");
        assert_eq!(
            urls(&r.srpm),
            [
                format!("https://vault.centos.org/{folder}/os/Source/SPackages/kernel-3.10.0-{v}.src.rpm"),
                format!("https://vault.centos.org/{folder}/updates/Source/SPackages/kernel-3.10.0-{v}.src.rpm"),
            ],
            "{release}"
        );
        assert_eq!(
            urls(&r.devel_rpm)[0],
            format!("https://vault.centos.org/{folder}/os/x86_64/Packages/kernel-devel-{release}.rpm")
        );
    }
}

#[test]
fn centos7_errata_are_looked_for_in_updates_first() {
    let r = resolve("3.10.0-957.27.2.el7.x86_64", &Mirrors::default(), None).unwrap();
    assert_eq!(r.os_minor, "7.6");
    assert!(r.release.errata);
    assert_eq!(
        urls(&r.srpm),
        [
            "https://vault.centos.org/7.6.1810/updates/Source/SPackages/kernel-3.10.0-957.27.2.el7.src.rpm",
            "https://vault.centos.org/7.6.1810/os/Source/SPackages/kernel-3.10.0-957.27.2.el7.src.rpm",
        ]
    );
    assert_eq!(
        urls(&r.devel_rpm),
        [
            "https://vault.centos.org/7.6.1810/updates/x86_64/Packages/kernel-devel-3.10.0-957.27.2.el7.x86_64.rpm",
            "https://vault.centos.org/7.6.1810/os/x86_64/Packages/kernel-devel-3.10.0-957.27.2.el7.x86_64.rpm",
        ]
    );
    assert_eq!(r.browse, ["https://buildlogs.centos.org/c7.1810.u.x86_64/kernel/"]);
    let ga = resolve("3.10.0-1160.el7.x86_64", &Mirrors::default(), None).unwrap();
    assert_eq!(ga.browse, ["https://buildlogs.centos.org/c7.2009.00.x86_64/kernel/"]);
}

#[test]
fn el8_resolves_by_dist_tag_or_ga_build_number() {
    let m = Mirrors::default();
    let r = resolve("4.18.0-372.9.1.el8.x86_64", &m, None).unwrap();
    assert_eq!(r.os_minor, "8.6");
    assert_eq!(
        urls(&r.srpm),
        [
            "https://dl.rockylinux.org/vault/rocky/8.6/BaseOS/source/tree/Packages/k/kernel-4.18.0-372.9.1.el8.src.rpm",
            "https://vault.almalinux.org/8.6/BaseOS/Source/Packages/kernel-4.18.0-372.9.1.el8.src.rpm",
        ]
    );
    assert_eq!(
        urls(&r.devel_rpm),
        [
            "https://dl.rockylinux.org/vault/rocky/8.6/BaseOS/x86_64/os/Packages/k/kernel-devel-4.18.0-372.9.1.el8.x86_64.rpm",
            "https://vault.almalinux.org/8.6/BaseOS/x86_64/os/Packages/kernel-devel-4.18.0-372.9.1.el8.x86_64.rpm",
        ]
    );
    let z = resolve("4.18.0-513.24.1.el8_9.x86_64", &m, None).unwrap();
    assert_eq!(z.os_minor, "8.9");
    // CentOS 8 (8.0-8.5) is tried after the rebuilds that are still maintained.
    let c = resolve("4.18.0-193.28.1.el8_2.x86_64", &m, None).unwrap();
    assert_eq!(
        urls(&c.srpm),
        ["https://vault.centos.org/8.2.2004/BaseOS/Source/SPackages/kernel-4.18.0-193.28.1.el8_2.src.rpm"]
    );
    assert_eq!(
        urls(&c.devel_rpm),
        ["https://vault.centos.org/8.2.2004/BaseOS/x86_64/os/Packages/kernel-devel-4.18.0-193.28.1.el8_2.x86_64.rpm"]
    );
}

#[test]
fn el9_devel_is_in_appstream() {
    let r = resolve("5.14.0-284.11.1.el9_2.x86_64", &Mirrors::default(), Some(Distro::Rocky)).unwrap();
    assert_eq!(
        urls(&r.srpm),
        ["https://dl.rockylinux.org/vault/rocky/9.2/BaseOS/source/tree/Packages/k/kernel-5.14.0-284.11.1.el9_2.src.rpm"]
    );
    assert_eq!(
        urls(&r.devel_rpm),
        ["https://dl.rockylinux.org/vault/rocky/9.2/AppStream/x86_64/os/Packages/k/kernel-devel-5.14.0-284.11.1.el9_2.x86_64.rpm"]
    );
    let a = resolve("5.14.0-427.13.1.el9_4.x86_64", &Mirrors::default(), Some(Distro::Alma)).unwrap();
    assert_eq!(
        urls(&a.devel_rpm),
        ["https://vault.almalinux.org/9.4/AppStream/x86_64/os/Packages/kernel-devel-5.14.0-427.13.1.el9_4.x86_64.rpm"]
    );
    let ga = resolve("5.14.0-70.13.1.el9_0.aarch64", &Mirrors::default(), Some(Distro::Rocky)).unwrap();
    assert_eq!(
        urls(&ga.devel_rpm),
        ["https://dl.rockylinux.org/vault/rocky/9.0/AppStream/aarch64/os/Packages/k/kernel-devel-5.14.0-70.13.1.el9_0.aarch64.rpm"]
    );
}

#[test]
fn mirrors_are_configurable() {
    let mut m = Mirrors::default();
    m.set(Mirror { site: MirrorSite::Centos, url: "http://127.0.0.1:8080/vault/".parse().unwrap() });
    m.set(Mirror { site: "rocky".parse().unwrap(), url: "http://127.0.0.1:8080/rocky".parse().unwrap() });
    assert_eq!(m.rocky.as_str(), "http://127.0.0.1:8080/rocky");
    let r = resolve("3.10.0-327.el7.x86_64", &m, None).unwrap();
    assert_eq!(r.srpm[0].url, "http://127.0.0.1:8080/vault/7.2.1511/os/Source/SPackages/kernel-3.10.0-327.el7.src.rpm");
    assert!("fedora".parse::<MirrorSite>().is_err());
    assert!("ftp://x".parse::<MirrorUrl>().is_err());
    assert_eq!("almalinux".parse::<MirrorSite>(), Ok(MirrorSite::Alma));
    assert_eq!("buildlogs".parse::<MirrorSite>(), Ok(MirrorSite::CentosBuildlogs));
}

#[test]
fn distros_parse_by_name() {
    assert_eq!("Rocky".parse::<Distro>(), Ok(Distro::Rocky));
    assert_eq!("almalinux".parse::<Distro>(), Ok(Distro::Alma));
    assert!("buildlogs".parse::<Distro>().is_err());
}

#[test]
fn what_cannot_be_resolved_says_why() {
    let m = Mirrors::default();
    for bad in
        ["6.1.0-56-amd64", "3.10.0-957.el6.x86_64", "3.10.0-957.el7", "3.10-957.el7.x86_64", "3.10.0-x.el7.x86_64"]
    {
        assert!(matches!(resolve(bad, &m, None), Err(BuildError::BadRelease { .. })), "{bad}");
    }
    // 958 is no GA build number, and it has no dist tag minor.
    let e = resolve("3.10.0-958.el7.x86_64", &m, None).unwrap_err();
    assert!(matches!(e, BuildError::NotCatalogued { .. }), "{e}");
    assert!(e.to_string().contains("--srpm"), "{e}");
    // el7 is CentOS only; el8.1 predates Rocky and Alma.
    assert!(matches!(resolve("3.10.0-957.el7.x86_64", &m, Some(Distro::Rocky)), Err(BuildError::NotCatalogued { .. })));
    assert!(matches!(resolve("4.18.0-147.el8.x86_64", &m, Some(Distro::Alma)), Err(BuildError::NotCatalogued { .. })));
    assert!(is_rhel_release("3.10.0-957.el7.x86_64"));
    assert!(!is_rhel_release("6.12.117+deb12-amd64"));
}

#[test]
fn the_distribution_compiler_is_known_for_the_distribution_kernel_lines_only() {
    let compiler = |r: &str| RhelRelease::parse(r).unwrap().distribution_compiler().map(|(prefix, _)| prefix);
    assert_eq!(compiler("3.10.0-327.el7.x86_64"), Some("4.8"));
    assert_eq!(compiler("3.10.0-1160.119.1.el7.x86_64"), Some("4.8"));
    assert_eq!(compiler("4.18.0-372.9.1.el8_6.x86_64"), Some("8"));
    assert_eq!(compiler("5.14.0-284.11.1.el9_2.x86_64"), Some("11"));
    // Another kernel with an el9 tag (a rebuild, the tests' repackaged Debian kernel).
    assert_eq!(compiler("6.12.117-284.1.el9_2.x86_64"), None);
}
