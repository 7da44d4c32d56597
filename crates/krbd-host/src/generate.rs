//! `generate`: man pages and shell completion scripts, made from the clap definitions of
//! the command line they document (clap_mangen, clap_complete), so that they always say
//! what `--help` says. krbd-forge pages go to section 1, krbd-host's to section 8 (a tool
//! for root); the packages ship krbd-host's (krbd-forge `package`).

use crate::exit::{help_with_table, ExitCode};
use crate::report::Failure;
pub use clap_complete::Shell;
use std::path::PathBuf;

const GENERATE_HELP: &str = "\
Examples:
  krbd-forge generate man --out man/          (krbd-forge.1, krbd-forge-build.1, ...)
  krbd-forge generate completions bash > /etc/bash_completion.d/krbd-forge
  krbd-host generate completions zsh --out /usr/share/zsh/site-functions   (writes _krbd-host)";

/// Write man pages or shell completions generated from this command line's definitions.
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(GENERATE_HELP))]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, clap::Subcommand)]
pub enum Generate {
    /// Write one man page for the command and one per subcommand (e.g. krbd-forge-build.1)
    /// into DIR.
    Man {
        /// The folder to write the pages into (made when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the completion script for SHELL on stdout, or write it into --out DIR under
    /// the file name that shell's completion loader looks for.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
        /// The folder to write the script into, e.g. /usr/share/bash-completion/completions.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Every man page of `cmd`, its subcommands' (recursively, hidden ones and `help` left out)
/// and its own: (file name, roff text).
pub fn man_pages(cmd: clap::Command, section: &str) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    collect_pages(&cmd, section, &mut out);
    out.sort();
    out
}

fn collect_pages(cmd: &clap::Command, section: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, section, out);
    }
    let man = clap_mangen::Man::new(cmd.clone()).section(section);
    let mut text = Vec::new();
    // Rendering into memory cannot fail.
    let _ = man.render(&mut text);
    out.push((man.get_filename(), text));
}

/// The completion script of `cmd` for `shell`.
pub fn completion(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The file name under which `shell` finds the completion of `bin` in its directory:
/// bash-completion loads `completions/<bin>` on demand, zsh `_<bin>` from `$fpath`, fish
/// `<bin>.fish`.
pub fn completion_file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Bash => bin.to_string(),
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        Shell::Elvish => format!("{bin}.elv"),
        Shell::PowerShell => format!("_{bin}.ps1"),
        _ => bin.to_string(),
    }
}

pub fn run(args: GenerateArgs, cmd: clap::Command, section: &str) -> ExitCode {
    let bin = cmd.get_name().to_string();
    let (dir, files) = match args.what {
        Generate::Man { out } => (out, man_pages(cmd, section)),
        Generate::Completions { shell, out: None } => {
            crate::out!("{}", String::from_utf8_lossy(&completion(cmd, shell)));
            return ExitCode::Ok;
        }
        Generate::Completions { shell, out: Some(dir) } => {
            (dir, vec![(completion_file_name(shell, &bin), completion(cmd, shell))])
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Failure::from_error(ExitCode::of_io(e.kind()), &e)
            .detail("path", dir.display().to_string())
            .report(false);
    }
    for (name, bytes) in &files {
        let path = dir.join(name);
        if let Err(e) = krbd_formats::atomic::write_atomic(&path, bytes) {
            return Failure::from_error(ExitCode::of_io(e.source.kind()), &e).report(false);
        }
        if !crate::terminal::quiet() {
            eprintln!("wrote {}", path.display());
        }
    }
    ExitCode::Ok
}
