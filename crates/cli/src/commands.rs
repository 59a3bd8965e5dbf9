//! The administration commands (`patd identity …`, `patd token …`, `patd key …`), which work on
//! the database directly, and `patd completions` and `patd man`.

use crate::args::{Cli, IdentityCommand, KeyCommand, TokenCommand};
use crate::output::{self, Column};
use clap::CommandFactory;
use patd_proto::{timestamp, GetPersonalAccessTokenResponse, IdentityView, SigningKeyView};
use patd_server::admin;
use std::path::Path;

pub async fn identity(command: IdentityCommand) -> anyhow::Result<()> {
    match command {
        IdentityCommand::Create(create) => {
            let store = patd_store::connect(&create.database.database).await?;
            // Checked before anything is stored.
            let email = create
                .email
                .as_deref()
                .map(patd_core::notify::parse_email)
                .transpose()?;
            let view =
                admin::create_identity(store.as_ref(), &create.name, &create.level, &create.rights)
                    .await?;
            if let Some(email) = email {
                store.set_identity_email(&view.id, Some(&email)).await?;
            }
            output::json(&view)
        }
        IdentityCommand::List { json, database } => {
            let store = patd_store::connect(&database.database).await?;
            let identities = admin::list_identities(store.as_ref()).await?;
            if json {
                output::json_pretty(&identities)
            } else {
                Ok(output::line(&identity_table(&identities))?)
            }
        }
        IdentityCommand::SignInLink {
            identity,
            valid,
            public_url,
            database,
        } => {
            let store = patd_store::connect(&database.database).await?;
            let url =
                admin::sign_in_link(store.as_ref(), &identity, Some(valid), &public_url).await?;
            Ok(output::line(&url)?)
        }
    }
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(create) => {
            let store = patd_store::connect(&create.database.database).await?;
            let owner = create.owner.clone();
            let created = admin::create_token(store.as_ref(), &owner, create.options()?).await?;
            output::json(&created)
        }
        TokenCommand::List {
            owner,
            json,
            database,
        } => {
            let store = patd_store::connect(&database.database).await?;
            let tokens = admin::list_tokens(store.as_ref(), owner.as_deref()).await?;
            if json {
                output::json_pretty(&tokens)
            } else {
                Ok(output::line(&pat_table(&tokens))?)
            }
        }
    }
}

pub async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Rotate { database, kek } => {
            let kek = kek.load()?;
            let store = patd_store::connect(&database.database).await?;
            let kid = patd_server::keys::rotate(store.as_ref(), kek.as_deref()).await?;
            let sealed_with = kek.as_ref().map(|kek| kek.id());
            output::json(&serde_json::json!({ "kid": kid, "sealedWith": sealed_with }))
        }
        KeyCommand::RotateKek { old, new, database } => {
            let old = crate::args::read_kek_file(&old)?;
            let new = crate::args::read_kek_file(&new)?;
            let store = patd_store::connect(&database.database).await?;
            // The Shared Signals RSA key goes with the signing keys; it is opened first.
            let ssf_key = patd_server::ssf::resealed_rsa_key(store.as_ref(), &old, &new).await?;
            let sealed = patd_server::keys::rotate_kek(store.as_ref(), &old, &new).await?;
            if let Some(ssf_key) = ssf_key {
                patd_server::ssf::store_rsa_key(store.as_ref(), &ssf_key).await?;
            }
            output::json(&serde_json::json!({ "sealed": sealed, "sealedWith": new.id() }))
        }
        KeyCommand::List { json, database } => {
            let store = patd_store::connect(&database.database).await?;
            let keys = patd_server::keys::list(store.as_ref()).await?;
            if json {
                output::json_pretty(&keys)
            } else {
                Ok(output::line(&key_table(&keys))?)
            }
        }
        KeyCommand::Retire { kid, database } => {
            let store = patd_store::connect(&database.database).await?;
            let key = patd_server::keys::retire(store.as_ref(), &kid).await?;
            output::json(&key)
        }
    }
}

/// `patd completions SHELL`. Written to memory first: the generator gives up on a write error
/// by panicking, and a closed pipe must end the command quietly.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "patd", &mut script);
    write_raw(&script)
}

/// `patd man`: the page of `patd` on stdout, or with `dir` one page per command there.
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(command, dir)?;
            Ok(())
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            write_raw(&page)
        }
    }
}

fn write_raw(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// A date as tables show it: the day, in UTC (`--json` gives the full timestamps).
pub fn day(at: time::OffsetDateTime) -> String {
    let text = timestamp::format(at);
    text.get(..10).map_or(text.clone(), str::to_owned)
}

const fn column(title: &'static str, shrinks: bool) -> Column {
    Column { title, shrinks }
}

/// PATs as a table: id, name (marked when managed), owner, scope, last used, expires. The
/// creation date is left to `--json`, to leave the names room on an 80-column terminal.
pub fn pat_table(pats: &[GetPersonalAccessTokenResponse]) -> String {
    let columns = [
        column("ID", false),
        column("NAME", true),
        column("OWNER", true),
        column("SCOPE", true),
        column("LAST USED", false),
        column("EXPIRES", false),
    ];
    let rows = pats
        .iter()
        .map(|pat| {
            let name = if pat.managed {
                format!("{} (managed)", pat.name)
            } else {
                pat.name.clone()
            };
            vec![
                pat.id.clone(),
                name,
                pat.owner.name.clone(),
                pat.scope.join(" "),
                pat.last_used.map_or_else(|| "-".to_owned(), day),
                pat.expiration_date.map_or_else(|| "never".to_owned(), day),
            ]
        })
        .collect();
    output::table(&columns, rows)
}

fn identity_table(identities: &[IdentityView]) -> String {
    let columns = [
        column("ID", false),
        column("NAME", true),
        column("LEVELS", false),
        column("RIGHTS", true),
    ];
    let rows = identities
        .iter()
        .map(|identity| {
            vec![
                identity.id.clone(),
                identity.name.clone(),
                identity.levels.join(" "),
                identity.rights.join(" "),
            ]
        })
        .collect();
    output::table(&columns, rows)
}

fn key_table(keys: &[SigningKeyView]) -> String {
    let columns = [
        column("KID", false),
        column("ALGORITHM", false),
        column("CREATED", false),
        column("STATUS", false),
        column("SEALED WITH", false),
    ];
    let rows = keys
        .iter()
        .map(|key| {
            let status = match (key.current, key.retired) {
                (true, _) => "current".to_owned(),
                (false, None) => "verifies".to_owned(),
                (false, Some(at)) => format!("retired {}", timestamp::format(at)),
            };
            vec![
                key.kid.clone(),
                key.algorithm.clone(),
                timestamp::format(key.created),
                status,
                key.sealed_with.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    output::table(&columns, rows)
}
