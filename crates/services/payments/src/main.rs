//! `payments`: see the library docs. Configuration comes from the environment
//! (`PAYMENTS_PG_DSN`, `KAFKA_BROKERS`, ...; docs/configuration.md lists them all).
//! Without a subcommand it runs the worker; `payments dead-letters ...` inspects and
//! replays the messages it kept as poison.

use anyhow::Context;
use clap::{Parser, Subcommand};
use payments::dead_letters::{Command, Selection};

#[derive(Debug, Parser)]
#[command(
    name = "payments",
    version,
    about = "The payments worker (no subcommand: run it)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<CliCommand>,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Inspect or replay the poison messages kept in `dead_letters`.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// List kept messages, oldest first: id, origin, time, reason, payload start.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Publish kept messages again to the topic they came from (consumed, and
    /// deduplicated, by the running workers), deleting each row once acknowledged.
    Replay {
        /// Ids from `list`.
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every kept message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(CliCommand::DeadLetters(command)) = Cli::parse().command else {
        return service_skeleton::run_from_env(payments::Config::from_env, payments::start).await;
    };
    let config = service_skeleton::init_from_env(payments::Config::from_env)?;
    let command = match command {
        DeadLettersCommand::List { limit } => Command::List { limit },
        DeadLettersCommand::Replay { ids, all } => Command::Replay(if all {
            Selection::All
        } else {
            Selection::Ids(ids)
        }),
    };
    // The blocking postgres and kafka clients stay off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        payments::dead_letters::run(&config, &command, &mut std::io::stdout().lock())
    })
    .await?
    .context("dead-letters")
}
