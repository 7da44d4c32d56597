//! The README shows the exit-code table exactly as every `--help` does.

#[test]
fn the_readme_shows_the_one_exit_code_table() {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let table = krbd_host::exit::table();
    assert!(text.contains(table.trim_end()), "README.md lacks the table `krbd-host --help` prints:\n{table}");
}
