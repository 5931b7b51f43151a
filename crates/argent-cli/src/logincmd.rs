//! `argent login` / `argent logout`, and who a CLI decision is made as.
//!
//! A queue decision from the command line is made as a real user of the database, with the
//! role the store gives that user — never a name and role the caller declares. The user is
//! proven by a token (an API token, the same kind `POST /api/login` issues; the store keeps
//! only its SHA-256) from `ARGENT_TOKEN` or the token file `argent login` wrote, or by the
//! user's password on standard input for that one command (`--user NAME --password-stdin`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Args;

use argent_agent::Reviewer;
use argent_server::UserRole;
use argent_server::auth::{hash_token, perm, verify_password};
use argent_store::{Store, TokenKind, UserRecord};

/// The token file's location: `$ARGENT_TOKEN_FILE`, else `~/.config/argent/token`.
pub fn token_file() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ARGENT_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither ARGENT_TOKEN_FILE nor HOME is set: nowhere to keep the token")?;
    Ok(PathBuf::from(home).join(".config/argent/token"))
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The user to sign in as (see `argent users list`).
    pub name: String,
    /// Read the password from standard input (the only way to give one).
    #[arg(long)]
    pub password_stdin: bool,
    /// How long the token stays valid, in hours.
    #[arg(long, default_value_t = 12)]
    pub ttl_hours: u32,
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The user `name` if `password` is theirs and they are not disabled. The same error
/// whether the user does not exist, is disabled or the password is wrong.
async fn check_password(store: &Store, name: &str, password: &str) -> Result<UserRecord> {
    let user = store.user(name).await?;
    let ok = user
        .as_ref()
        .is_some_and(|u| verify_password(password, &u.password_hash));
    match user {
        Some(u) if ok && !u.is_disabled() => Ok(u),
        _ => bail!("wrong user name or password for '{name}'"),
    }
}

/// A fresh random 256-bit token, hex.
fn new_token() -> Result<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .context("reading the operating system's random number generator")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the token readable by its owner only (the directory 0700, the file 0600).
fn write_token_file(path: &Path, token: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode when opened: make it private too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
    }
    use std::io::Write;
    f.write_all(format!("{token}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The token in the token file, `None` if there is no file. Refuses a file others can read.
fn read_token_file(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} can be read by others (mode {:o}): `chmod 600` it or sign in again",
                path.display(),
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

/// `argent login NAME --password-stdin`.
pub async fn login(store: &Store, args: LoginArgs) -> Result<()> {
    if !args.password_stdin {
        bail!("give --password-stdin and the password on standard input");
    }
    let password = read_password()?;
    let user = check_password(store, &args.name, &password).await?;
    let token = new_token()?;
    let expires_at = Utc::now() + chrono::Duration::hours(i64::from(args.ttl_hours.max(1)));
    store.purge_expired_tokens(Utc::now()).await?;
    store
        .insert_token(&hash_token(&token), &user.name, TokenKind::Api, expires_at)
        .await?;
    let path = token_file()?;
    write_token_file(&path, &token)?;
    println!(
        "signed in as {} ({}) until {}; token in {}",
        user.name,
        user.role,
        expires_at.format("%Y-%m-%d %H:%M UTC"),
        path.display()
    );
    Ok(())
}

/// `argent logout`: revokes the token file's token and removes the file.
pub async fn logout(store: &Store) -> Result<()> {
    let path = token_file()?;
    match read_token_file(&path)? {
        Some(token) => {
            store.delete_token(&hash_token(&token)).await?;
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            println!("signed out; removed {}", path.display());
        }
        None => println!("not signed in (no token at {})", path.display()),
    }
    Ok(())
}

/// Who decides a queue item from the command line.
#[derive(Args, Debug)]
pub struct AuthArgs {
    /// Decide as this user, proven by the password on standard input (--password-stdin),
    /// instead of the token from `argent login` or ARGENT_TOKEN.
    #[arg(long, requires = "password_stdin")]
    pub user: Option<String>,
    /// Read --user's password from standard input.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// Refused: a decision is made as a signed-in user, never a declared name.
    #[arg(long = "as", hide = true)]
    pub legacy_as: Option<String>,
    /// Refused: the role is the one the store gives the signed-in user.
    #[arg(long = "role", hide = true)]
    pub legacy_role: Option<String>,
}

const SIGN_IN: &str = "sign in with `argent login NAME --password-stdin` (or set ARGENT_TOKEN, \
                       or pass --user NAME --password-stdin)";

/// The reviewer a CLI decision is made as: the signed-in user, with the role the store
/// gives them. Refuses self-declared identities, unknown or expired tokens, and roles
/// that do not decide queue items (compliance, evaluator).
pub async fn reviewer(store: &Store, auth: &AuthArgs) -> Result<Reviewer> {
    if auth.legacy_as.is_some() || auth.legacy_role.is_some() {
        bail!(
            "--as and --role are no longer accepted: a decision is made as a real user with the \
             role the database gives them; {SIGN_IN}"
        );
    }
    let user = match &auth.user {
        Some(name) => check_password(store, name, &read_password()?).await?,
        None => {
            let (token, source) = match std::env::var("ARGENT_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
            {
                Some(t) => (t.trim().to_string(), "ARGENT_TOKEN".to_string()),
                None => {
                    let path = token_file()?;
                    match read_token_file(&path)? {
                        Some(t) => (t, path.display().to_string()),
                        None => bail!("not signed in: {SIGN_IN}"),
                    }
                }
            };
            store
                .token_user(&hash_token(&token), TokenKind::Api, Utc::now())
                .await?
                .with_context(|| {
                    format!("the token from {source} is unknown or has expired: {SIGN_IN}")
                })?
        }
    };
    let role: UserRole = user
        .role
        .parse()
        .map_err(|e: String| anyhow::anyhow!("stored role of user {}: {e}", user.name))?;
    let reviewer_role = role
        .reviewer_role()
        .filter(|_| perm::QUEUE_DECIDE.contains(&role));
    let Some(reviewer_role) = reviewer_role else {
        bail!(
            "user {} is {role}; only a collector, manager or admin decides queue items",
            user.name
        );
    };
    Ok(Reviewer {
        name: user.name,
        role: reviewer_role,
    })
}
