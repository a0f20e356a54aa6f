//! What the Debian package installs beside the binary, generated from the CLI definition
//! so that it cannot drift from it: man pages (clap_mangen), shell completions
//! (clap_complete) and the starter config. `src/deb/build.sh` calls the hidden `plcvault
//! dist DIR` and stages the result.

use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Writes `man/plcvault.1` and one page per subcommand (`plcvault-collect.1`, ...),
/// `completions/{plcvault.bash,_plcvault,plcvault.fish}` and `plcvault.toml` into `out`.
pub fn write(cmd: clap::Command, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    let mut written = Vec::new();
    // clap_complete offers hidden subcommands too (its bash and zsh do): they are left out.
    let mut visible = without_hidden(&cmd);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut visible, "plcvault", &completions)
            .with_context(|| format!("cannot write the {shell} completion"))?;
        written.push(path);
    }
    let config = out.join("plcvault.toml");
    let text = super::commands::site_config(
        "# plcvault site config, installed by the Debian package (a conffile: your edits are\n\
         # kept on upgrade). `plcvault --config /etc/plcvault/plcvault.toml config check`.",
        "/var/lib/plcvault/vault",
        "/var/lib/plcvault/state",
    );
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    written.push(config);
    let mut pages: Vec<_> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    pages.sort();
    written.extend(pages);
    Ok(written)
}

/// The command with its hidden subcommands left out (clap cannot remove one): its
/// version, about, arguments and visible subcommands under the name `plcvault`.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new("plcvault")
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if cmd.get_version().is_some() {
        out = out.version(env!("CARGO_PKG_VERSION"));
    }
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    out
}
