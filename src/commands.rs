//! The command line: `serve` (default), `migrate`, `check-config`, `user ...`,
//! `storage check` and `bench ...`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use chrono::{Days, NaiveTime};

use crate::app::{Application, open_store, shutdown_on_signal};
use crate::cli::{Cli, Command, MembershipArg, StorageCommand, UserCommand};
use crate::config::Config;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::room::Role;
use crate::domain::time::now_ms;
use crate::domain::user::{self, Membership};
use crate::services::accounts;
use crate::store::{DynStore, NewUser, StoreError};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            config.validate()?;
            open_store(&config).await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => {
            config.validate()?;
            println!("{config:#?}");
            Ok(())
        }
        Command::Bench(args) => crate::bench::command(*args, config).await,
        Command::Storage(StorageCommand::Check { dry_run }) => {
            config.validate()?;
            let store = open_store(&config).await?;
            let blobs = crate::storage::open(
                config.storage_url.as_deref(),
                &config.data_dir,
                &config.s3_options(),
            )
            .await?;
            let report = crate::services::attachments::check_storage(&store, &blobs, dry_run).await;
            store.close().await;
            let report = report?;
            println!("storage: {}", blobs.describe());
            println!("files: {}", report.files);
            for key in &report.leftovers {
                println!("leftover (no attachment refers to it): {key}");
            }
            for id in &report.missing {
                println!("missing (the attachment's file is gone): {id}");
            }
            println!(
                "leftovers: {}, deleted: {}{}, missing: {}",
                report.leftovers.len(),
                report.deleted,
                if dry_run { " (dry run)" } else { "" },
                report.missing.len()
            );
            Ok(())
        }
        Command::User(command) => {
            config.validate()?;
            let store = open_store(&config).await?;
            let result = user_command(&store, &config, command).await;
            store.close().await;
            result
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let url = match &app.state().config.public_url {
        Some(url) => url.to_string(),
        None if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}/", addr.port()),
        None => format!("http://{addr}/"),
    };
    tracing::info!(%addr, "listening");
    println!("Parley is running. Open {url} in your browser (Ctrl-C to stop).");
    shutdown_on_signal(app.state().shutdown.clone());
    app.run_until_stopped().await
}

async fn user_command(
    store: &DynStore,
    config: &Config,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, admin } => {
            let username = user::parse_username(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_password(&username)?;
            user::check_password(&password, &username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let hash = accounts::hash_password(password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let new = NewUser {
                id: UserId::new(),
                username,
                password_hash: hash,
                display_name: String::new(),
                is_admin: admin,
                created_at: now_ms(),
            };
            let created = match store.insert_user(&new).await {
                Err(StoreError::Conflict(_)) => bail!("the username {:?} is taken", new.username),
                other => other?,
            };
            crate::services::rooms::ensure_default_room(store, config)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Ok(room) = RoomId::parse(&config.default_room)
                && store.get_room(&room).await?.is_some()
            {
                let _ = store
                    .insert_member(&room, created.id, Role::Member, now_ms())
                    .await;
            }
            println!(
                "created user {} ({}){}",
                created.username,
                created.id,
                if admin { ", admin" } else { "" }
            );
            Ok(())
        }
        UserCommand::SetMembership { name, level, until } => {
            let user = find_user(store, &name).await?;
            let membership = match level {
                MembershipArg::Free => Membership::Free,
                MembershipArg::Basic => Membership::Basic,
                MembershipArg::Premium => Membership::Premium,
                MembershipArg::Vip => Membership::Vip,
            };
            // `--until 2026-12-31` keeps the membership through that whole day (UTC).
            let until_ms = until
                .map(|day| {
                    day.checked_add_days(Days::new(1))
                        .map(|next| next.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
                        .context("that date is out of range")
                })
                .transpose()?;
            let updated = store.update_membership(user, membership, until_ms).await?;
            println!(
                "{} is now {}{}",
                updated.username,
                membership.code(),
                until
                    .map(|d| format!(" until {d} (inclusive)"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        UserCommand::SetAdmin { name, admin } => {
            let user = find_user(store, &name).await?;
            let updated = store.update_admin(user, admin).await?;
            println!(
                "{} is {}an admin",
                updated.username,
                if admin { "now " } else { "no longer " }
            );
            Ok(())
        }
    }
}

async fn find_user(store: &DynStore, name: &str) -> anyhow::Result<UserId> {
    match store.get_user_by_username(name).await? {
        Some(user) => Ok(user.id),
        None => bail!("no user named {name:?}"),
    }
}

/// Asks twice on a terminal; otherwise reads one line from stdin (for scripts).
fn read_password(username: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {username}: "))?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}
