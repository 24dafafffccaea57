//! `tollgate admin --journal FILE ...`: an operator's changes to a quota journal, applied
//! by the engine when it next starts on the file (companies suspended, resumed,
//! terminated or removed; users added, disabled, enabled or removed; tokens revoked,
//! suspended for a while or restored), and `list` to see what the journal holds. Tokens
//! are read from standard input when given as `-` (so they stay out of the shell's
//! history and the process list), and never printed in full.

use std::path::Path;
use std::time::Duration;

use tollgate::quota::journal::{AdminJournal, AdminRecord};
use tollgate::quota::{CompanyStatus, KeyRef};

/// One operator change (or the listing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// A company's status.
    CompanyStatus(String, CompanyStatus),
    /// A user added to a company.
    AddUser {
        /// The user.
        user: String,
        /// Its company.
        company: String,
    },
    /// A user disabled (`true`) or enabled.
    UserDisabled(String, bool),
    /// A user removed.
    RemoveUser(String),
    /// A token revoked until restored (`None`) or suspended for a while.
    Revoke(String, Option<Duration>),
    /// A token restored.
    Restore(String),
    /// What the journal holds.
    List,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Applies `op` to the journal at `path`; returns what to print.
pub fn run(path: &Path, op: AdminOp) -> Result<String, String> {
    let mut j = AdminJournal::open(path).map_err(|e| e.to_string())?;
    let now = now_ns();
    let at = i64::try_from(now).unwrap_or(i64::MAX);
    let admin =
        |j: &mut AdminJournal, change: AdminRecord| j.admin(at, change).map_err(|e| e.to_string());
    let later = "it takes effect when an engine next starts on the journal";
    Ok(match op {
        AdminOp::CompanyStatus(company, status) => {
            let shown = format!("company {company:?}: {status:?}");
            admin(&mut j, AdminRecord::CompanyStatus { company, status })?;
            format!("{shown} ({later})\n")
        }
        AdminOp::AddUser { user, company } => {
            let shown = format!("user {user:?} added to {company:?}");
            admin(&mut j, AdminRecord::UserAdded { user, company })?;
            format!("{shown} ({later})\n")
        }
        AdminOp::UserDisabled(user, disabled) => {
            let shown = format!(
                "user {user:?} {}",
                if disabled { "disabled" } else { "enabled" }
            );
            admin(&mut j, AdminRecord::UserDisabled { user, disabled })?;
            format!("{shown} ({later})\n")
        }
        AdminOp::RemoveUser(user) => {
            let shown = format!("user {user:?} removed");
            admin(&mut j, AdminRecord::UserRemoved { user })?;
            format!("{shown} ({later})\n")
        }
        AdminOp::Revoke(token, duration) => {
            let until = duration
                .map(|d| now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)));
            j.revoke(
                &token,
                tollgate::engine::revocation_filter_bit(&token),
                until,
                now,
            )
            .map_err(|e| e.to_string())?;
            let what = match duration {
                None => "revoked until restored".to_owned(),
                Some(d) => format!("suspended for {}s", d.as_secs()),
            };
            format!("token {}: {what} ({later})\n", KeyRef::of(&token))
        }
        AdminOp::Restore(token) => {
            let had = j.restore(&token).map_err(|e| e.to_string())?;
            let key = KeyRef::of(&token);
            if had {
                format!("token {key}: restored ({later})\n")
            } else {
                format!("token {key}: was not revoked in the journal\n")
            }
        }
        AdminOp::List => {
            let mut out = String::new();
            for c in j.admin_changes().map_err(|e| e.to_string())? {
                out.push_str(&format!("change {} at {}: {:?}\n", c.seq, c.at, c.change));
            }
            for r in j.revocations().map_err(|e| e.to_string())? {
                let until = r.until.map_or("until restored".to_owned(), |u| {
                    format!("until {u} (Unix ns)")
                });
                out.push_str(&format!(
                    "revoked {} {until}{}\n",
                    r.key,
                    if r.automatic { " (automatic)" } else { "" }
                ));
            }
            if out.is_empty() {
                out.push_str("no administrative changes and no revocations\n");
            }
            out
        }
    })
}

/// A token argument: `-` reads one line from standard input.
pub fn token_arg(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the token from standard input: {e}"))?;
    let t = line.trim().to_owned();
    if t.is_empty() {
        return Err("no token on standard input".into());
    }
    Ok(t)
}
