//! `sealcast kms`: the local keyring's subcommands, and the keyring
//! arguments `package` and `decrypt` share with them. Part of the binary.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sealcast::clock::UtcDateTime;
use sealcast::config::{AwsKmsConfig, KmsConfig};
use sealcast::kms::local::LocalKms;

use crate::load_config;

#[derive(Subcommand)]
pub(crate) enum KmsCommand {
    /// Create a local keyring (mode 0600) with master key version 1; refuses
    /// one that exists. `sealcast serve` creates its keyring on first start,
    /// so this is for key servers and `package` set up before any server ran.
    Init {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Add a master key version to the local keyring. New data keys are wrapped
    /// under it once the server reloads (SIGHUP) or restarts; keys wrapped under older versions
    /// still unwrap.
    Rotate {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Show the key provider; for the local keyring, its master key versions
    /// and creation times (never key bytes).
    Info {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

/// Which keyring: given directly, or the one a config file names.
#[derive(clap::Args)]
#[group(multiple = false)]
pub(crate) struct KeyringArgs {
    /// The keyring file.
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// The configuration whose [kms] section names the keyring (without
    /// either option: the embedded defaults, sealcast-data/keyring.json).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

/// The keyring path to work on, or `Err(aws)` when the configuration uses
/// AWS KMS.
fn keyring_path(args: &KeyringArgs) -> anyhow::Result<Result<PathBuf, AwsKmsConfig>> {
    if let Some(path) = &args.keyring {
        return Ok(Ok(path.clone()));
    }
    let config = load_config(args.config.as_deref())?;
    Ok(match config.kms {
        KmsConfig::Local { keyring } => Ok(keyring),
        KmsConfig::Aws(aws) => Err(aws),
    })
}

fn require_keyring(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        anyhow::bail!(
            "no keyring at {}: `sealcast serve` creates it in storage.data_dir on first start; pass --config with \
             the server's configuration file or --keyring FILE to use the server's keyring (`sealcast kms init` \
             or package --new-keyring creates a new one)",
            shown.display()
        );
    }
    Ok(())
}

/// Opens the local keyring the tools work with, never creating it unless
/// `create` (an explicit `--new-keyring`) asks for it.
pub(crate) fn open_tool_keyring(args: &KeyringArgs, tool: &str, create: bool) -> anyhow::Result<LocalKms> {
    let path = keyring_path(args)?.map_err(|_| {
        anyhow::anyhow!("kms.provider is \"aws\": sealcast {tool} works with a local keyring only; pass --keyring FILE")
    })?;
    if create {
        anyhow::ensure!(
            !path.exists(),
            "--new-keyring: {} exists already; drop --new-keyring to use it",
            path.display()
        );
        return Ok(LocalKms::open_or_create(&path)?);
    }
    require_keyring(&path)?;
    Ok(LocalKms::open(&path)?)
}

pub(crate) fn kms_command(command: KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::Init { keyring } => {
            let path = keyring_path(&keyring)?.map_err(|_| {
                anyhow::anyhow!("kms.provider is \"aws\": AWS KMS keeps the master key; there is no keyring to create")
            })?;
            anyhow::ensure!(!path.exists(), "keyring {} exists already", path.display());
            LocalKms::open_or_create(&path)?;
            println!(
                "created keyring {} with master key version 1; every server and tool that handles these \
                 streams must use this file",
                path.display()
            );
        }
        KmsCommand::Rotate { keyring } => {
            let path = keyring_path(&keyring)?.map_err(|_| {
                anyhow::anyhow!(
                    "kms.provider is \"aws\": rotate the KMS key in AWS (automatic rotation, or \
                     `aws kms rotate-key-on-demand`); sealcast rotates only the local keyring"
                )
            })?;
            require_keyring(&path)?;
            let version = LocalKms::rotate(&path)?;
            println!(
                "keyring {}: added master key version {version}; new data keys use it once sealcast \
                 reloads (SIGHUP, systemctl reload) or restarts, and keys wrapped under older versions still unwrap",
                path.display()
            );
        }
        KmsCommand::Info { keyring } => match keyring_path(&keyring)? {
            Ok(path) => {
                require_keyring(&path)?;
                let kms = LocalKms::open(&path)?;
                println!("provider local, keyring {}", path.display());
                println!("version  created (UTC)");
                let current = kms.current_version();
                for (version, created) in kms.versions() {
                    let created_utc = created
                        .parse::<i64>()
                        .ok()
                        .and_then(|secs| secs.checked_mul(1000))
                        .and_then(UtcDateTime::from_unix_ms)
                        .map_or_else(|| format!("unix {created}"), |t| t.to_string());
                    let note = if version == current {
                        "  (current: wraps new data keys)"
                    } else {
                        ""
                    };
                    println!("{version:<8} {created_utc}{note}");
                }
            }
            Err(aws) => {
                println!("provider aws");
                println!("key_id   {}", aws.key_id);
                println!(
                    "region   {}",
                    aws.region
                        .as_deref()
                        .unwrap_or("(from AWS_REGION / AWS_DEFAULT_REGION)")
                );
                println!(
                    "endpoint {}",
                    aws.endpoint
                        .as_deref()
                        .unwrap_or("(https://kms.<region>.amazonaws.com)")
                );
                println!("master key versions are kept by AWS KMS");
            }
        },
    }
    Ok(())
}
